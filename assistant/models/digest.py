"""The SHA-256 of a model file: one way to hash a file, used by the installer, the ladder and the drain facts."""

from __future__ import annotations

import hashlib
from pathlib import Path

from assistant.errors import ModelError


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file; ModelError naming the file when it cannot be read."""
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
