"""Speech recognition interface: streaming sessions fed with 16-bit mono PCM chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from assistant.messages import AudioClip, Transcript


class Recording(Sequence[bytes]):
    """Audio chunks of an utterance that was recorded whole before recognition starts (a WAV file).

    The pipeline recognises a Recording as one whole utterance (the recogniser may normalise over
    all of it); any other iterable of chunks is a live stream, recognised as it arrives.
    """

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = tuple(chunks)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        return self._chunks[index]

    def __len__(self) -> int:
        return len(self._chunks)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)


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

    def session(self, *, whole: bool = False) -> AsrSession:
        """Start recognising a new utterance; ``whole``: all of it is fed before ``finish`` is awaited (a
        recording), so the recogniser may wait for the end and normalise over the whole utterance."""
        ...

    def close(self) -> None:
        """Free the engine's memory."""
        ...


def transcribe(transcriber: Transcriber, clip: AudioClip, chunk_s: float = 0.1, *, whole: bool = False) -> Transcript:
    """Recognise a clip (mono, at ``transcriber.rate``) fed in chunks: streamed as from a microphone,
    or with ``whole`` as the recording it is."""
    session = transcriber.session(whole=whole)
    step = max(1, int(transcriber.rate * chunk_s)) * 2
    for start in range(0, len(clip.pcm), step):
        session.feed(clip.pcm[start : start + step])
    return session.finish()
