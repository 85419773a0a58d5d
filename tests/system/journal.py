"""The guest's journal as the host receives it (short-monotonic lines over a virtio port)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^\[\s*(?P<t>\d+\.\d+)\]\s+\S+\s+(?P<ident>[^:\[]+)(?:\[(?P<pid>\d+)\])?:\s?(?P<msg>.*)$")


@dataclass(frozen=True)
class Entry:
    t: float
    """Guest CLOCK_MONOTONIC (s since the kernel started)."""
    ident: str
    pid: int | None
    msg: str
    offset: int
    """Byte offset of the line's end in the file (for "after this point" searches)."""


class Journal:
    """Reads a growing journal file; ``wait`` blocks until a matching line appears."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[Entry] = []
        self._pos = 0

    def refresh(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._pos)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        offset = self._pos
        for raw in data[:end].split(b"\n")[:-1]:
            offset += len(raw) + 1
            m = _LINE.match(raw.decode(errors="replace"))
            if m:
                self.entries.append(Entry(float(m["t"]), m["ident"].strip(), int(m["pid"]) if m["pid"] else None,
                                          m["msg"], offset))
        self._pos += end

    @property
    def mark(self) -> int:
        """A point in the journal: searches ``after`` it only see later lines."""
        self.refresh()
        return self._pos

    def find(self, pattern: str, *, after: int = 0, ident: str | None = None) -> list[Entry]:
        self.refresh()
        rx = re.compile(pattern)
        return [e for e in self.entries if e.offset > after and (ident is None or e.ident == ident) and rx.search(e.msg)]

    def wait(self, pattern: str, timeout: float, *, after: int = 0, ident: str | None = None,
             alive: object = None) -> Entry | None:
        """The first line after ``after`` matching ``pattern``, or None after ``timeout`` seconds (or
        when ``alive()`` turns false)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(pattern, after=after, ident=ident)
            if found:
                return found[0]
            if time.monotonic() > deadline or (callable(alive) and not alive()):
                found = self.find(pattern, after=after, ident=ident)
                return found[0] if found else None
            time.sleep(0.2)

    def tail(self, lines: int = 80) -> str:
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            return "(no journal received)"
        return "\n".join(text.splitlines()[-lines:])
