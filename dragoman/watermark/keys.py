"""Watermark keys: where the secret comes from, and how it is kept out of logs.

A key is 32 secret bytes. It comes from, in order:

1. the environment variable ``DRAGOMAN_WATERMARK_KEY``: 64 hex digits, ``base64:...``
   (at least 16 bytes), or any other string taken as a passphrase;
2. the key file ``$DRAGOMAN_HOME/watermark.key`` (default ``~/.cache/dragoman``), holding
   the key in hex; created with mode 0600 and a fresh random key on first use.

`repr()` and `str()` show only a short public fingerprint, never key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from dragoman.errors import DragomanError

logger = logging.getLogger(__name__)

ENV_VAR = "DRAGOMAN_WATERMARK_KEY"
KEY_FILE_NAME = "watermark.key"
KEY_BYTES = 32
MIN_RAW_KEY_BYTES = 16
_PASSPHRASE_SALT = b"dragoman-watermark-passphrase-v1"
_PASSPHRASE_ITERATIONS = 100_000


class WatermarkKeyError(DragomanError):
    """A watermark key that is missing, malformed or stored unsafely."""

    code = "watermark_key"


class WatermarkKey:
    """A secret watermark key. Immutable; compares in constant time; never printed."""

    __slots__ = ("_secret",)

    _secret: bytes

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_RAW_KEY_BYTES:
            raise WatermarkKeyError(f"a watermark key needs at least {MIN_RAW_KEY_BYTES} bytes")
        object.__setattr__(self, "_secret", bytes(secret))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("WatermarkKey is immutable")

    @classmethod
    def from_passphrase(cls, passphrase: str) -> WatermarkKey:
        """A deterministic key stretched from a passphrase (PBKDF2-HMAC-SHA256)."""
        if not passphrase:
            raise WatermarkKeyError("the watermark passphrase is empty")
        raw = hashlib.pbkdf2_hmac(
            "sha256", passphrase.encode("utf-8"), _PASSPHRASE_SALT, _PASSPHRASE_ITERATIONS
        )
        return cls(raw)

    @classmethod
    def from_string(cls, text: str) -> WatermarkKey:
        """Parse 64 hex digits, ``base64:<data>``, or else treat `text` as a passphrase."""
        value = text.strip()
        if not value:
            raise WatermarkKeyError("the watermark key is empty")
        if value.startswith("base64:"):
            try:
                raw = base64.b64decode(value[len("base64:") :], validate=True)
            except binascii.Error as exc:
                raise WatermarkKeyError("the base64 watermark key does not decode") from exc
            return cls(raw)
        if len(value) >= 2 * MIN_RAW_KEY_BYTES and len(value) % 2 == 0:
            try:
                return cls(bytes.fromhex(value))
            except ValueError:
                pass
        return cls.from_passphrase(value)

    @classmethod
    def generate(cls) -> WatermarkKey:
        """A fresh random key (use `hex()` once to store it)."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, path: str | Path | None = None
    ) -> WatermarkKey:
        """The configured key: environment variable, else the key file (created if absent)."""
        environ = os.environ if env is None else env
        configured = environ.get(ENV_VAR)
        if configured is not None:
            key = cls.from_string(configured)
            logger.info("watermark key from $%s (fingerprint %s)", ENV_VAR, key.fingerprint)
            return key
        file = Path(path) if path is not None else default_key_path(environ)
        return cls._from_file(file)

    @classmethod
    def _from_file(cls, file: Path) -> WatermarkKey:
        if not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            raw = secrets.token_bytes(KEY_BYTES)
            try:
                fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return cls._from_file(file)  # created by someone else meanwhile
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(raw.hex() + "\n")
            key = cls(raw)
            logger.warning(
                "created a new watermark key at %s (fingerprint %s): back it up, marks "
                "made with it cannot be detected without it", file, key.fingerprint
            )
            return key
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            logger.warning(
                "watermark key file %s is readable by others (mode %o); chmod 600 it", file, mode
            )
        try:
            text = file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise WatermarkKeyError(f"cannot read the watermark key file {file}") from exc
        key = cls.from_string(text)
        logger.info("watermark key from %s (fingerprint %s)", file, key.fingerprint)
        return key

    def derive(self, purpose: str, size: int = 32) -> bytes:
        """Independent key material for one `purpose` (HMAC-SHA256 counter mode)."""
        out = b""
        counter = 0
        while len(out) < size:
            message = purpose.encode("utf-8") + counter.to_bytes(4, "big")
            out += hmac.new(self._secret, message, hashlib.sha256).digest()
            counter += 1
        return out[:size]

    @property
    def fingerprint(self) -> str:
        """A short public identifier of the key (not invertible; safe to log)."""
        return self.derive("fingerprint", 4).hex()

    def hex(self) -> str:
        """The key material as hex, for storing it. Never log this."""
        return self._secret.hex()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WatermarkKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.derive("hash", 8))

    def __repr__(self) -> str:
        return f"WatermarkKey(fingerprint={self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("WatermarkKey cannot be pickled (it would leak the secret)")


def default_key_path(env: Mapping[str, str] | None = None) -> Path:
    """``$DRAGOMAN_HOME/watermark.key``, default ``~/.cache/dragoman/watermark.key``."""
    environ = os.environ if env is None else env
    home = environ.get("DRAGOMAN_HOME")
    root = Path(home) if home else Path.home() / ".cache" / "dragoman"
    return root / KEY_FILE_NAME
