"""Server configuration: one frozen dataclass, every limit documented."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""The browser client, served at `/`."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Limits and options of one `DragomanServer`.

    host, port: where to listen (port 0: any free port, see `DragomanServer.port`).
    ws_path: the WebSocket endpoint (protocol v1).
    require_auth: refuse sessions without a valid API key (turn off only on loopback).
    allowed_origins: browser origins accepted besides the server's own origin
        (same-origin pages are always accepted; requests without Origin are not browsers).
    max_message_bytes: larger messages are refused with `message_too_large` and
        skipped; four times this closes the connection (code 1009).
    idle_timeout_s: a session whose client sent nothing (speaker) or that received no
        room activity (listener) for this long ends with `idle_timeout`.
    max_session_s: a session ends with `session_timeout` after this long.
    start_timeout_s: time a new connection has to send `session.start`/`session.resume`.
    resume_grace_s: a dropped session is kept this long for `session.resume`.
    resume_buffer_bytes: committed messages kept per session for resume (oldest dropped).
    outbox_max_messages, outbox_max_bytes: messages waiting to be written to one client;
        at half of either the client is warned (`slow_consumer`, not fatal), past either
        it is dropped (`slow_consumer`, fatal).
    rate_factor, rate_burst_s: speakers may send audio at most `rate_factor` times real
        time plus `rate_burst_s` seconds ahead (keys with batch mode are exempt).
    drain_timeout_s: on shutdown, how long speakers' pipelines get to flush.
    static_dir: directory served over plain HTTP at `/` (None: no static files).
    service_id: 16-bit deployment id carried in the watermark payload.
    watermarked: whether the pipelines this server drives watermark their speech (the
        real pipeline always does; the no-ML stand-in does not). Announced to clients as
        `output.watermark` in `session.started`: a client shows a watermark badge only
        when the server says so.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    ws_path: str = "/v1"
    require_auth: bool = True
    allowed_origins: tuple[str, ...] = ()
    max_message_bytes: int = 256 * 1024
    idle_timeout_s: float = 60.0
    max_session_s: float = 4 * 3600.0
    start_timeout_s: float = 10.0
    resume_grace_s: float = 30.0
    resume_buffer_bytes: int = 1024 * 1024
    outbox_max_messages: int = 1024
    outbox_max_bytes: int = 4 * 1024 * 1024
    rate_factor: float = 1.25
    rate_burst_s: float = 2.0
    drain_timeout_s: float = 15.0
    static_dir: Path | None = STATIC_DIR
    service_id: int = 0x0D6A
    watermarked: bool = True

    def __post_init__(self) -> None:
        if self.max_message_bytes < 1024:
            raise ValueError("max_message_bytes must be at least 1024")
        if min(self.idle_timeout_s, self.max_session_s, self.start_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")
        if self.rate_factor < 1.0:
            raise ValueError("rate_factor below 1 would refuse real-time audio")
