"""Choose the speech recogniser: Vosk when a model is configured or installed, else the labelled fallback."""

from __future__ import annotations

import logging
from pathlib import Path

from assistant.config import AsrConfig
from assistant.errors import InstallError, ModelNotFound
from assistant.models.install import InstalledModel, read_manifest
from assistant.speech.asr import Transcriber

_LOG = logging.getLogger(__name__)

DEFAULT_VOSK = "vosk-en"
"""Catalogue name of the Vosk model looked for first in the install manifest."""
FALLBACK_WARNING = "no Vosk model installed; using the pocketsphinx English fallback"


def installed_vosk(models_dir: Path) -> InstalledModel | None:
    """The installed English Vosk model: ``vosk-en`` if recorded, else any recorded English Vosk model."""
    models = read_manifest(models_dir.expanduser())
    if DEFAULT_VOSK in models:
        return models[DEFAULT_VOSK]
    for name in sorted(models):
        if models[name].kind == "vosk" and models[name].language == "en":
            return models[name]
    return None


def open_transcriber(cfg: AsrConfig, models_dir: Path, *, state_dir: Path | None = None,
                     device: str = "default") -> Transcriber:
    """Load the recogniser ``cfg`` asks for.

    ``state_dir`` and ``device``: where pocketsphinx keeps the normalisation state of the input
    device, and which device that is (see ``cmn_state``); without ``state_dir`` nothing is kept.

    - ``engine: pocketsphinx``: the pocketsphinx English model that ships in its wheel.
    - ``engine: vosk``: ``cfg.vosk_model``, else the model ``assistant models install vosk-en`` put
      under ``models_dir``; ModelNotFound when there is neither.
    - ``engine: auto``: as ``vosk`` when a model is configured or installed, else the pocketsphinx
      fallback, with a warning saying so. A configured ``vosk_model`` that is missing is an error
      in every mode: the configuration names it, so it is never silently replaced.
    """
    from assistant.speech.sphinx_asr import SphinxTranscriber
    from assistant.speech.vosk_asr import VoskTranscriber

    def sphinx() -> Transcriber:
        keep = state_dir if cfg.keep_adaptation else None
        return SphinxTranscriber(rate=cfg.rate, state_dir=keep, device=device)

    if cfg.engine == "pocketsphinx":
        if cfg.grammar:
            _LOG.info("asr.grammar is for Vosk only; pocketsphinx recognises open vocabulary")
        return sphinx()
    if cfg.vosk_model is not None:
        return VoskTranscriber(cfg.vosk_model.expanduser(), rate=cfg.rate, grammar=cfg.grammar)
    try:
        record = installed_vosk(models_dir)
    except InstallError as exc:
        if cfg.engine == "vosk":
            raise
        _LOG.warning("cannot read the installed models (%s)", exc)
        record = None
    if record is not None and (cfg.engine == "vosk" or record.path.is_dir()):
        _LOG.info("using the installed Vosk model '%s' in %s", record.name, record.path)
        return VoskTranscriber(record.path, rate=cfg.rate, grammar=cfg.grammar)
    if cfg.engine == "vosk":
        raise ModelNotFound(f"asr.engine is vosk but no Vosk model is installed in {models_dir} and asr.vosk_model "
                            "is not set; run: assistant models install vosk-en")
    if record is not None:
        _LOG.warning("the manifest lists Vosk model '%s' at %s, but it is missing; run: assistant models "
                     "install %s", record.name, record.path, record.name)
    _LOG.warning(FALLBACK_WARNING)
    return sphinx()
