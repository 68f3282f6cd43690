"""`dragoman serve`: the WebSocket service (protocol v1), health, metrics, browser client."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="run the WebSocket translation service (docs/protocol.md)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument("--keys", type=Path, help="TOML file of hashed API keys "
                        "(also: $DRAGOMAN_API_KEYS, comma-separated)")
    parser.add_argument("--no-auth", action="store_true",
                        help="accept sessions without an API key (local development only)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="browser origin allowed besides the server's own (repeatable)")
    parser.add_argument("--certfile", type=Path, help="TLS certificate chain (PEM)")
    parser.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("--max-session", type=float, default=4 * 3600.0, help="seconds")
    parser.add_argument("--resume-grace", type=float, default=30.0, help="seconds")
    parser.add_argument("--max-message-bytes", type=int, default=256 * 1024)
    parser.add_argument("--stand-in", action="store_true",
                        help="serve the no-ML stand-in pipeline (load tests, client work)")
    parser.add_argument("--hash-key", metavar="TOKEN",
                        help="print the key-file entry for TOKEN and exit")
    parser.add_argument("--new-key", action="store_true",
                        help="print a fresh random token and its key-file entry, then exit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dragoman.web.auth import hash_token, new_token

    if args.hash_key or args.new_key:
        token = args.hash_key or new_token()
        if args.new_key:
            print(f"token (give it to the client, store it nowhere else): {token}")
        print(f'[[key]]\nname = "change-me"\nsha256 = "{hash_token(token).hex()}"')
        return 0
    if bool(args.certfile) != bool(args.keyfile):
        raise SystemExit("dragoman serve: --certfile and --keyfile go together")
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from dragoman.web.auth import KeyStore
    from dragoman.web.config import ServerConfig
    from dragoman.web.pipelines import PipelineFactory, real_pipeline_factory, stand_in_factory
    from dragoman.web.server import DragomanServer

    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    config = ServerConfig(
        host=args.host, port=args.port, require_auth=not args.no_auth,
        allowed_origins=tuple(args.allow_origin), idle_timeout_s=args.idle_timeout,
        max_session_s=args.max_session, resume_grace_s=args.resume_grace,
        max_message_bytes=args.max_message_bytes, watermarked=not args.stand_in)
    keys = KeyStore.load(args.keys)
    resources = None
    factory: PipelineFactory
    if args.stand_in:
        factory = stand_in_factory()
    else:
        from dragoman.pipeline import Resources

        resources = Resources()
        print("dragoman serve: loading models ...", flush=True)
        await resources.start()
        factory = real_pipeline_factory(resources)
    server = DragomanServer(config, factory, keys, ssl_context=context)
    await server.start()
    scheme = "https" if context else "http"
    print(f"dragoman serve: {scheme}://{args.host}:{server.port}/ "
          f"(WebSocket {config.ws_path}, /healthz, /metrics); Ctrl-C drains and stops",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("dragoman serve: draining sessions ...", flush=True)
    await server.shutdown()
    if resources is not None:
        resources.close()
    return 0
