"""Is a downloaded model what the catalogue says it is? GGUF metadata, Vosk layout, Piper voice files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from assistant.errors import ModelError
from assistant.models.catalogue import CatalogueEntry, SourceFile
from assistant.models.gguf_info import GgufInfo, read_gguf_info

_LOG = logging.getLogger(__name__)


def expected_file_type(quant: str) -> str:
    """The ``general.file_type`` name llama.cpp writes for a quantization: ``Q8_0`` -> ``MOSTLY_Q8_0``."""
    return "ALL_F32" if quant.upper() == "F32" else f"MOSTLY_{quant.upper()}"


def gguf_problems(entry: CatalogueEntry, source: SourceFile, path: Path) -> tuple[GgufInfo | None, list[str]]:
    """Read ``path``'s GGUF header and compare it with the catalogue.

    Returns the file's facts (None when it is not a readable GGUF) and the differences found:
    not a GGUF or truncated, another architecture or context length, another quantization, or no
    chat template (the appliance needs an instruct model).
    """
    try:
        info = read_gguf_info(path)
    except ModelError as exc:
        return None, [str(exc)]
    problems: list[str] = []
    if entry.architecture and info.architecture != entry.architecture:
        problems.append(f"its architecture is {info.architecture!r}, the catalogue says {entry.architecture!r}")
    if entry.context_length and info.context_length != entry.context_length:
        problems.append(f"it declares a context of {info.context_length} tokens, the catalogue says "
                        f"{entry.context_length}")
    quant = source.quant or (entry.quant if source == entry.files[0] else None)
    if quant and info.file_type and info.file_type != expected_file_type(quant):
        problems.append(f"it holds {info.file_type}, the catalogue says {quant}")
    if not info.chat_template:
        problems.append("it has no chat template (not an instruct model)")
    return info, problems


def voice_problems(folder: Path, onnx_name: str) -> list[str]:
    """A Piper voice needs its ``.onnx`` and a readable ``.onnx.json`` with a sample rate beside it."""
    onnx, config = folder / onnx_name, folder / f"{onnx_name}.json"
    problems: list[str] = []
    if not onnx.is_file() or onnx.stat().st_size == 0:
        problems.append(f"missing or empty {onnx.name}")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        rate = data["audio"]["sample_rate"]
        if not isinstance(rate, int) or rate <= 0:
            problems.append(f"{config.name} gives no valid audio.sample_rate")
    except FileNotFoundError:
        problems.append(f"missing {config.name} (every Piper voice is an .onnx and its .onnx.json)")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"{config.name} is not a Piper voice config ({exc!r})")
    return problems


def content_problems(entry: CatalogueEntry, model_dir: Path, *, pinned: set[str]) -> list[str]:
    """Everything wrong with an unpacked or placed model folder, for its kind.

    For a GGUF whose hash matched a SHA-256 pinned in the catalogue (``pinned`` holds such file
    names), the file is exactly the published one: metadata that differs from the catalogue's
    description is then the catalogue's mistake and is only logged. A damaged or non-GGUF file is
    always a problem.
    """
    problems: list[str] = []
    if entry.kind == "vosk":
        from assistant.speech.vosk_asr import model_problems

        problems += model_problems(model_dir)
    elif entry.kind == "piper-voice":
        for onnx in [f.name for f in entry.files if f.name.endswith(".onnx")]:
            problems += voice_problems(model_dir, onnx)
    elif entry.kind == "llm":
        for source in entry.files:
            if not source.name.lower().endswith(".gguf"):
                continue
            info, found = gguf_problems(entry, source, model_dir / source.name)
            if info is not None and found and source.name in pinned:
                _LOG.warning("%s matches its pinned SHA-256 but differs from the catalogue's description: %s",
                             source.name, "; ".join(found))
                continue
            problems += [f"{source.name}: {p}" for p in found]
    return problems
