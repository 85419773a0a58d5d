"""Faults of files the soak injects: a model file that goes missing or corrupt, and the turn log's disk running full."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

from assistant.atomic import commit_file

_LOG = logging.getLogger(__name__)


MODEL_FAULTS = ("missing", "truncated", "garbage", "not_gguf")
"""How a model file goes bad between turns."""


class ModelFileFault:
    """Breaks one model file on disk and restores it atomically from a pristine copy."""

    def __init__(self, path: Path, pristine: Path) -> None:
        self.path = path
        self.pristine = pristine
        self.broken: str | None = None

    def damage(self, kind: str, rng: random.Random) -> None:
        """``missing``: deleted; ``truncated``: cut short; ``garbage``: its tensor data overwritten;
        ``not_gguf``: its header overwritten. Written in place: never use it on a resident model."""
        size = self.pristine.stat().st_size
        if kind == "missing":
            self.path.unlink(missing_ok=True)
        elif kind == "truncated":
            os.truncate(self.path, rng.randrange(0, size // 2))
        elif kind in ("garbage", "not_gguf"):
            offset = 0 if kind == "not_gguf" else rng.randrange(64, min(size, 1 << 20))
            with self.path.open("r+b") as fh:
                fh.seek(offset)
                fh.write(rng.randbytes(4096))
        else:
            raise ValueError(f"unknown model fault {kind!r} (known: {', '.join(MODEL_FAULTS)})")
        self.broken = kind
        _LOG.info("soak: model %s made %s", self.path.name, kind)

    def restore(self) -> None:
        """Put the good file back: copied beside it, then renamed over it (as an install does)."""
        tmp = self.path.with_name(f".{self.path.name}.restore")
        shutil.copyfile(self.pristine, tmp)
        commit_file(tmp, self.path)
        self.broken = None


class DiskFull:
    """The turn log's file system running full and freed again.

    As root, a small tmpfs is mounted at ``mountpoint`` (``fill()`` writes a filler file until
    ENOSPC, ``free()`` deletes it): the kernel's own ENOSPC, partial writes included. Without the
    rights to mount, ``fill()`` points the turn log at ``/dev/full`` instead, which fails every
    write with ENOSPC.
    """

    def __init__(self, mountpoint: Path, *, size_kb: int = 4096) -> None:
        self.mountpoint = mountpoint
        self.size_kb = size_kb
        self.mounted = False
        self.mode = "none"
        """``tmpfs`` or ``/dev/full``."""
        self._filler = mountpoint / "filler.bin"
        self._saved_path: Path | None = None
        self.log_holder: Any = None
        """The object whose ``path`` is the turn log (``TurnLog``), for the ``/dev/full`` mode."""

    def mount(self) -> bool:
        """Mount the tmpfs; False (and the ``/dev/full`` mode) when this process may not mount."""
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        data = f"size={self.size_kb}k,mode=0755".encode()
        rc = libc.mount(b"soak-log", str(self.mountpoint).encode(), b"tmpfs", 0, data)
        if rc != 0:
            err = ctypes.get_errno()
            _LOG.warning("soak: cannot mount a tmpfs at %s (%s): a full disk is emulated with /dev/full",
                         self.mountpoint, os.strerror(err))
            self.mode = "/dev/full"
            return False
        self.mounted = True
        self.mode = "tmpfs"
        return True

    def fill(self) -> None:
        """Use up every free byte."""
        if self.mode == "tmpfs":
            block = b"\0" * 4096
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                while True:
                    try:
                        if os.write(fd, block) == 0:
                            break
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
            finally:
                os.close(fd)
        elif self.log_holder is not None and self._saved_path is None:
            self._saved_path = self.log_holder.path
            self.log_holder.path = Path("/dev/full")

    def free(self) -> None:
        """Give the space back."""
        if self.mode == "tmpfs":
            self._filler.unlink(missing_ok=True)
        elif self.log_holder is not None and self._saved_path is not None:
            self.log_holder.path, self._saved_path = self._saved_path, None

    def unmount(self) -> None:
        """Unmount the tmpfs (its files are gone afterwards)."""
        if not self.mounted:
            return
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.umount2(str(self.mountpoint).encode(), 2) != 0:  # MNT_DETACH
            _LOG.warning("soak: cannot unmount %s: %s", self.mountpoint, os.strerror(ctypes.get_errno()))
        self.mounted = False
