"""The speed twin: a GGUF with a real model's shapes and random weights, for measuring speed and energy here.

A twin decodes exactly as fast as the model whose shapes it copies (the same matrices pass through
the same kernels) but it knows nothing: its replies are noise. It is marked as a twin in its own
metadata (the marker survives re-quantization, since llama.cpp copies every key), every output
that shows one of its figures says so, and the commands that talk to a person refuse it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ConfigError, ModelError, ModelNotFound
from assistant.models.gguf_info import read_kv
from assistant.power.tiers import Tier, TierConfig

_LOG = logging.getLogger(__name__)

LABEL = "speed twin: random weights, speed and energy only, no quality"
"""What a twin is, said the same way in its metadata, the model list, the benchmark and the drain report."""

KEY_LABEL = "twin.label"
"""GGUF key holding ``LABEL``: its presence makes a file a twin."""
KEY_SHAPES_OF = "twin.shapes_of"
"""GGUF key: the model whose shapes the twin has, e.g. ``Llama-3.2-1B``."""
KEY_WORDS_PER_TOKEN = "twin.words_per_token"
"""GGUF key: words per generated token measured on a real model with the twin's tokenizer."""
KEY_WORDS_BASIS = "twin.words_per_token_basis"
"""GGUF key: where ``twin.words_per_token`` was measured (model, questions, tokens, words)."""
KEYS = frozenset({KEY_LABEL, KEY_SHAPES_OF, KEY_WORDS_PER_TOKEN, KEY_WORDS_BASIS})
BEFORE = "tokenizer."
"""The twin keys are written before every ``tokenizer.`` key (llama.cpp keeps the order when it quantizes), so a
scan for them stops there: checking a real model costs a few header reads, not its whole vocabulary."""

TWIN_DIR = "speed-twin"
"""Folder of the twin under the models directory; its rungs go to ``speed-twin/ladder``."""
TIERS_FILE = "tiers.yaml"
"""The twin's tier ladder (a config ``tiers:`` section) in its folder; ``--twin`` loads it."""


@dataclass(frozen=True)
class TwinInfo:
    """What a twin's metadata says about it."""

    path: Path
    label: str
    shapes_of: str
    """The model whose shapes the twin copies."""
    words_per_token: float
    """Words a real reply has per generated token (used to count a twin turn's words)."""
    words_basis: str
    """Where ``words_per_token`` was measured."""

    def words_estimate(self) -> str:
        """How a twin turn's word count is obtained, for the turn log and the reports."""
        return (f"estimated: tokens x {self.words_per_token:.3f} words per token ({self.words_basis}); "
                f"{self.label}")


def twin_info(path: Path) -> TwinInfo | None:
    """The twin facts of a GGUF file, or None when it is not a twin (a quick header scan, no tokenizer parse).

    ModelError when a file that is marked as a twin lacks its words-per-token figure.
    """
    kv = read_kv(path, KEYS, stop_at=BEFORE)
    if KEY_LABEL not in kv:
        return None
    wpt = kv.get(KEY_WORDS_PER_TOKEN)
    if not isinstance(wpt, float) or not 0.0 < wpt < 10.0:
        raise ModelError(f"{path} is marked as a speed twin but has no valid {KEY_WORDS_PER_TOKEN} ({wpt!r}); "
                         "make it again with `assistant models make-twin`")
    return TwinInfo(path=path, label=str(kv[KEY_LABEL]), shapes_of=str(kv.get(KEY_SHAPES_OF) or "?"),
                    words_per_token=float(wpt), words_basis=str(kv.get(KEY_WORDS_BASIS) or "unknown basis"))


def twin_label(path: Path) -> str | None:
    """The twin label of ``path`` (its marker), or None when it has none or cannot be read (never raises)."""
    try:
        label = read_kv(path, frozenset({KEY_LABEL}), stop_at=BEFORE).get(KEY_LABEL)
    except (ModelError, OSError):
        return None
    return str(label) if label is not None else None


def is_twin(path: Path) -> bool:
    """True when ``path`` is a GGUF marked as a speed twin (an unreadable file is not one)."""
    return twin_label(path) is not None


def twin_tiers(tiers: TierConfig | Iterable[Tier]) -> list[Tier]:
    """The llm tiers whose model file is a speed twin."""
    items = tiers.tiers if isinstance(tiers, TierConfig) else list(tiers)
    return [t for t in items if t.kind == "llm" and t.model is not None and is_twin(t.model.expanduser())]


def refuse_for_talking(tiers: TierConfig, where: str) -> None:
    """ConfigError when a tier a person would hear answers from a speed twin.

    A twin's replies are random tokens: speaking them to a person would be a broken appliance,
    so the commands that talk (run, ask, demo) refuse a twin anywhere in their ladder, naming the
    tier and the commands that use a twin on purpose.
    """
    found = twin_tiers(tiers)
    if not found:
        return
    names = ", ".join(f"'{t.name}' ({t.model})" for t in found)
    raise ConfigError(f"{where}: tier {names} is a {LABEL}. It cannot answer a person; it is for "
                      "`assistant bench --twin` and `assistant drain-test --twin`. Remove it from the tiers "
                      "section (or llm.model) of the configuration")


def twin_tiers_file(models_dir: Path) -> Path:
    """Where ``make-twin`` writes the twin's tier ladder: ``MODELS_DIR/speed-twin/tiers.yaml``."""
    return models_dir.expanduser() / TWIN_DIR / TIERS_FILE


def twin_ladder(models_dir: Path) -> TierConfig:
    """The speed twin's tier ladder, as ``make-twin`` wrote it; every llm tier must be a twin.

    ModelNotFound when no twin was made in ``models_dir``; ConfigError when the file names a model
    that is not a twin (a measurement labelled as a twin's must be one).
    """
    from assistant.config import load_config

    path = twin_tiers_file(models_dir)
    if not path.is_file():
        raise ModelNotFound(f"no speed twin in {path.parent}: make one with `assistant models make-twin` "
                            "(about 2.1 GB written, then quantized; see its --help)")
    tiers = load_config(path, search=False).tiers
    if tiers is None:
        raise ConfigError(f"{path} has no tiers section; make the twin again with `assistant models make-twin`")
    llm = [t for t in tiers.tiers if t.kind == "llm"]
    real = [t for t in llm if t not in twin_tiers(llm)]
    if real:
        raise ConfigError(f"{path}: tier(s) {', '.join(t.name for t in real)} are not speed twins "
                          "(missing, or a real model); make the twin again with `assistant models make-twin`")
    return tiers


@dataclass(frozen=True)
class TwinFiles:
    """The twin files found under a models directory (what ``models list`` shows)."""

    folder: Path
    files: tuple[TwinInfo, ...]
    """Every GGUF in the twin's folder that is marked as a twin (the F16 source when kept, and the rungs)."""
    size_bytes: int
    tiers_file: Path | None
    """The twin's tier ladder, when ``make-twin`` finished."""


def find_twin(models_dir: Path) -> TwinFiles | None:
    """The speed twin made in ``models_dir``, or None when there is none."""
    folder = models_dir.expanduser() / TWIN_DIR
    if not folder.is_dir():
        return None
    infos: list[TwinInfo] = []
    size = 0
    for path in sorted(folder.rglob("*.gguf")):
        try:
            info = twin_info(path)
        except (ModelError, OSError) as exc:
            _LOG.warning("%s: %s", path, exc)
            continue
        if info is not None:
            infos.append(info)
            size += path.stat().st_size
    if not infos:
        return None
    tiers = twin_tiers_file(models_dir)
    return TwinFiles(folder, tuple(infos), size, tiers if tiers.is_file() else None)
