"""The listening-mode terminal UI (rich) and its JSON-lines twin.

`ListenView` keeps what is on screen: per direction the last committed lines and
the live line (committed text bold, the revisable rest dim), the input level
meter, the latest mouth-to-ear latency, device states and notices. `Keys` reads
single key presses from a terminal without waiting for Enter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from dragoman.events import Error, Lag, SourceText, Span, event_to_dict, join_words
from dragoman.listen.session import (
    Caption,
    DeviceStatus,
    InputLevel,
    ListenUpdate,
    Notice,
    Played,
)

HELP = "[m] mute  [s] swap  [space] pass the turn (push-to-talk)  [q] quit"


class _Line:
    def __init__(self) -> None:
        self.committed = ""
        self.tentative = ""
        self.history: deque[str] = deque(maxlen=3)

    def finish(self) -> None:
        if self.committed.strip():
            self.history.append(self.committed.strip())
        self.committed = self.tentative = ""


class ListenView:
    """What the terminal shows (see the module doc)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.sources: dict[str, _Line] = {}
        self.targets: dict[str, _Line] = {}
        self.level = -120.0
        self.muted = False
        self.latency: float | None = None
        self.devices: dict[str, str] = {}
        self.notices: deque[str] = deque(maxlen=3)
        self.lag: dict[str, float] = {}

    def show(self, update: ListenUpdate) -> None:
        if isinstance(update, Caption):
            self._caption(update)
        elif isinstance(update, InputLevel):
            self.level, self.muted = update.dbfs, update.muted
        elif isinstance(update, Played):
            if update.mouth_to_ear is not None:
                self.latency = update.mouth_to_ear
        elif isinstance(update, DeviceStatus):
            text = f"{update.state} {update.device}".strip()
            if update.message:
                text += f" ({update.message})"
            self.devices[update.role] = text
            if update.state != "open":
                self.notices.append(f"{update.role}: {text}")
        elif isinstance(update, Notice):
            self.notices.append(update.message)
        elif isinstance(update, Error):
            self.notices.append(f"error [{update.code}]: {update.message}")
        elif isinstance(update, Lag):
            self.lag[update.stage] = update.behind / 16_000

    def _caption(self, caption: Caption) -> None:
        event = caption.event
        if isinstance(event, SourceText):
            line = self.sources.setdefault(caption.direction, _Line())
            delta = join_words(event.committed)
            if delta:
                line.committed = f"{line.committed} {delta}".strip()
            line.tentative = join_words(event.tentative)
        else:
            line = self.targets.setdefault(caption.direction, _Line())
            line.committed += event.committed_delta
            line.tentative = event.uncommitted
        if event.final:
            line.finish()

    def render(self) -> Group:
        parts: list[Any] = [Text(self.title, style="bold")]
        for direction in sorted(set(self.sources) | set(self.targets)):
            parts.append(Text(f"-- {direction}", style="cyan"))
            for role, line in (("heard", self.sources.get(direction)),
                               ("said", self.targets.get(direction))):
                if line is None:
                    continue
                for old in line.history:
                    parts.append(Text(f"  {role}: {old}", style="dim" if role == "heard" else ""))
                live = Text(f"  {role}: ", style="bold" if role == "said" else "")
                live.append(line.committed, style="bold")
                live.append(" " + line.tentative, style="dim italic")
                parts.append(live)
        parts.append(self._status())
        for notice in self.notices:
            parts.append(Text(notice, style="yellow"))
        parts.append(Text(HELP, style="dim"))
        return Group(*parts)

    def _status(self) -> Table:
        table = Table.grid(padding=(0, 2))
        meter = level_meter(self.level)
        mic = Text("MUTED", style="bold red") if self.muted else Text(meter, style="green")
        latency = f"{self.latency:.1f} s" if self.latency is not None else "-"
        lag = max(self.lag.values(), default=0.0)
        table.add_row(Text("mic"), mic, Text(f"{self.level:6.1f} dBFS"),
                      Text(f"latency {latency}"), Text(f"backlog {lag:.1f} s"))
        for role, state in self.devices.items():
            table.add_row(Text(role), Text(state, style="dim"), Text(""), Text(""), Text(""))
        return table


def level_meter(dbfs: float, width: int = 24, floor: float = -60.0) -> str:
    """A bar for a level in dBFS: empty at `floor`, full at 0."""
    filled = round(width * min(1.0, max(0.0, (dbfs - floor) / -floor)))
    return "#" * filled + "." * (width - filled)


def update_to_dict(update: ListenUpdate) -> dict[str, object]:
    """A JSON-ready record of an update (`--json`)."""
    if isinstance(update, Caption):
        record = event_to_dict(update.event)
        record["direction"] = update.direction
        return record
    if isinstance(update, Error | Lag):
        return event_to_dict(update)
    out: dict[str, object] = {"type": type(update).__name__}
    for name in update.__dataclass_fields__:
        value = getattr(update, name)
        if isinstance(value, Span):
            value = {"start": value.start, "end": value.end}
        out[name] = round(value, 3) if isinstance(value, float) else value
    return out


class Keys:
    """Single key presses from a terminal (cbreak mode), delivered on the loop."""

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self._on_key = on_key

    @contextlib.contextmanager
    def attached(self) -> Iterator[bool]:
        """Listen for keys while inside; yields whether stdin is a terminal.

        A terminal is put in cbreak mode (no Enter needed). Stdin that is a pipe is
        read the same way, so a script can send `m`, `s`, ` `, `q` (`--json` use);
        end of input stops reading, nothing else.
        """
        loop = asyncio.get_running_loop()
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):  # no stdin at all
            yield False
            return
        if not os.isatty(fd):
            try:
                loop.add_reader(fd, self._read, fd)
            except (OSError, ValueError, PermissionError):  # a regular file: not pollable
                yield False
                return
            try:
                yield False
            finally:
                loop.remove_reader(fd)
            return
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            loop.add_reader(fd, self._read, fd)
            yield True
        finally:
            loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _read(self, fd: int) -> None:
        try:
            raw = os.read(fd, 32)
        except BlockingIOError:
            return
        if not raw:  # end of input: stop watching it
            asyncio.get_running_loop().remove_reader(fd)
            return
        for key in raw.decode("utf-8", "ignore"):
            self._on_key(key)
