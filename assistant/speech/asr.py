"""Speech recognition interface: streaming sessions fed with 16-bit mono PCM chunks."""

from __future__ import annotations

from typing import Protocol

from assistant.messages import AudioClip, Transcript


class AsrSession(Protocol):
    """One utterance being recognised: feed chunks as they arrive, then finish."""

    def feed(self, pcm: bytes) -> Transcript | None:
        """Accept a chunk of mono s16le PCM at the transcriber's rate; return a partial result if any."""
        ...

    def finish(self) -> Transcript:
        """No more audio: return the final transcript (``is_final=True``)."""
        ...


class Transcriber(Protocol):
    """A loaded ASR engine; cheap to start sessions on, expensive to create."""

    engine: str
    """Engine name as shown in logs and output, e.g. ``vosk`` or ``pocketsphinx (fallback)``."""
    rate: int
    """Sample rate the sessions expect (Hz)."""

    def session(self) -> AsrSession:
        """Start recognising a new utterance."""
        ...

    def close(self) -> None:
        """Free the engine's memory."""
        ...


def transcribe(transcriber: Transcriber, clip: AudioClip, chunk_s: float = 0.1) -> Transcript:
    """Recognise a whole clip (mono, at ``transcriber.rate``) by streaming it in chunks."""
    session = transcriber.session()
    step = max(1, int(transcriber.rate * chunk_s)) * 2
    for start in range(0, len(clip.pcm), step):
        session.feed(clip.pcm[start : start + step])
    return session.finish()
