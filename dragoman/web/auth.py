"""Bearer-token API keys: stored only as SHA-256 digests, with per-key limits.

Keys come from a TOML file (`--keys FILE`) and/or the `DRAGOMAN_API_KEYS` environment
variable (comma-separated; each item a raw token, which is hashed at once, or
`sha256:<64 hex>`). A key file holds digests only:

    [[key]]
    name = "studio"
    sha256 = "9f86d081884c7d65..."   # dragoman serve --hash-key TOKEN
    max_sessions = 8                  # concurrent sessions (default 4)
    audio_minutes = 600               # audio input per server run (default: unlimited)
    batch = false                     # may send audio faster than real time
    tenant = "studio"                 # rooms are shared within a tenant (default: name)

Tokens are random, high-entropy secrets, so an unsalted fast hash is the right tool
(as for GitHub tokens); nothing here ever logs a token or a digest.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from dragoman.errors import DragomanError

ENV_VAR = "DRAGOMAN_API_KEYS"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key's identity and limits (never the token itself)."""

    name: str
    digest: bytes
    max_sessions: int = 4
    audio_minutes: float | None = None
    batch: bool = False
    tenant: str = ""

    def __repr__(self) -> str:  # the digest stays out of logs and tracebacks
        return f"ApiKey(name={self.name!r})"

    @property
    def room_namespace(self) -> str:
        return self.tenant or self.name


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    """A fresh random API token (`dk_` + 43 URL-safe characters, 256 bits)."""
    return "dk_" + secrets.token_urlsafe(32)


class KeyStore:
    """Looks up a presented token by digest in constant time per candidate."""

    def __init__(self, keys: list[ApiKey] | tuple[ApiKey, ...] = ()) -> None:
        self._keys = tuple(keys)
        names = [k.name for k in self._keys]
        if len(set(names)) != len(names):
            raise DragomanError("API key names must be unique")

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, token: str | None) -> ApiKey | None:
        if not token:
            return None
        digest = hash_token(token)
        found = None
        for key in self._keys:  # no early exit: timing says nothing about which key
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found

    @classmethod
    def load(cls, path: str | Path | None = None, *, env: str | None = None,
             defaults: ApiKey | None = None) -> KeyStore:
        """Keys from `path` (TOML) plus `env` (default: $DRAGOMAN_API_KEYS)."""
        keys: list[ApiKey] = []
        if path is not None:
            keys += _from_file(Path(path))
        raw = os.environ.get(ENV_VAR, "") if env is None else env
        base = defaults or ApiKey(name="", digest=b"")
        for index, item in enumerate(part.strip() for part in raw.split(",")):
            if not item:
                continue
            keys.append(ApiKey(name=f"env-{index}", digest=_digest_of(item),
                               max_sessions=base.max_sessions,
                               audio_minutes=base.audio_minutes, batch=base.batch))
        return cls(keys)


def _digest_of(item: str) -> bytes:
    if item.startswith("sha256:"):
        try:
            digest = bytes.fromhex(item[7:])
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise DragomanError("a 'sha256:' API key entry needs 64 hex digits")
        return digest
    return hash_token(item)


def _from_file(path: Path) -> list[ApiKey]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DragomanError(f"cannot read API key file {path}: {exc}") from exc
    entries = data.get("key", [])
    if not isinstance(entries, list):
        raise DragomanError(f"{path}: expected [[key]] tables")
    keys = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise DragomanError(f"{path}: key #{number} needs a 'sha256' digest")
        minutes = entry.get("audio_minutes")
        keys.append(ApiKey(
            name=str(entry.get("name", f"key-{number}")),
            digest=_digest_of("sha256:" + str(entry["sha256"])),
            max_sessions=int(entry.get("max_sessions", 4)),
            audio_minutes=None if minutes is None else float(minutes),
            batch=bool(entry.get("batch", False)),
            tenant=str(entry.get("tenant", "")),
        ))
    return keys
