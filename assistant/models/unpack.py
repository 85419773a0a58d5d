"""Unpack a model zip safely (one top folder, no escaping paths or links, room on disk) and swap a folder into place."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from pathlib import Path

from assistant.errors import InstallError

_LOG = logging.getLogger(__name__)


def unpack_zip(archive: Path, top_dir: str, dest: Path, *, label: str | None = None) -> dict[str, str]:
    """Unpack ``archive`` into ``dest``; returns the SHA-256 of every file by path relative to ``top_dir``.

    Every entry must lie under ``top_dir/``; absolute paths, ``..`` and symbolic links are
    refused, and the unpacked size must fit the free space before anything is written.
    ``label`` names the archive in messages (default: its file name).
    """
    name = label or archive.name
    top = top_dir + "/"
    files: dict[str, str] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                parts = info.filename.split("/")
                if not info.filename.startswith(top) or ".." in parts or info.filename.startswith("/"):
                    raise InstallError(f"{name}: unexpected entry {info.filename!r}: every file must be "
                                       f"under {top}")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InstallError(f"{name}: refusing the symbolic link {info.filename!r}")
            dest.mkdir(parents=True)
            need, free = sum(i.file_size for i in infos), shutil.disk_usage(dest).free
            if need > free:
                raise InstallError(f"not enough disk space in {dest.parent} to unpack {name}: "
                                   f"{need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free")
            for info in infos:
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with zf.open(info) as src, target.open("wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
                        h.update(block)
                files[info.filename[len(top):]] = h.hexdigest()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise InstallError(f"{name} is not a valid zip archive: {exc}") from exc
    except OSError as exc:
        raise InstallError(f"cannot unpack {name} into {dest}: {exc}") from exc
    if not (dest / top).is_dir():
        raise InstallError(f"{name} does not contain the folder {top}")
    _LOG.debug("unpacked %d files of %s", len(files), archive.name)
    return files


def place(new: Path, dest: Path, work: Path) -> Path:
    """Rename ``new`` to ``dest`` (same file system); an older ``dest`` is moved into ``work`` first.

    If the rename fails the older copy is put back, so ``dest`` is always either the old model or
    the new one, never a mix.
    """
    old = work / "previous"
    try:
        if dest.exists():
            os.rename(dest, old)
        try:
            os.rename(new, dest)
        except OSError:
            if old.exists():
                os.rename(old, dest)
            raise
    except OSError as exc:
        raise InstallError(f"cannot put the model in place at {dest}: {exc}") from exc
    return dest
