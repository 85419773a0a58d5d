"""One spoken turn: audio -> ASR -> LLM -> sentences -> TTS -> speaker, streaming and cancellable."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from assistant.errors import NoSpeech
from assistant.messages import SAMPLE_WIDTH, AudioClip, Transcript, TurnRecord
from assistant.speech.asr import Recording, Transcriber
from assistant.speech.llm import Responder
from assistant.speech.question_text import as_question
from assistant.speech.sentences import SentenceSplitter, word_count
from assistant.speech.speaker import Speaker
from assistant.speech.tts import Synthesizer

_LOG = logging.getLogger(__name__)

_DONE = object()


class TurnEvents(Protocol):
    """What a turn tells its caller as it goes (the appliance's state machine listens to it). Called
    from the turn's threads: keep them short."""

    def audio_ended(self) -> None:
        """The question's audio is over (the microphone's stream ended): recognition finishes and the
        reply is being thought of. Not called for a typed question or a cancelled turn."""

    def speaking(self) -> None:
        """The reply's first clip is about to go to the speaker."""


class NoEvents:
    """A caller that listens to nothing."""

    def audio_ended(self) -> None:
        pass

    def speaking(self) -> None:
        pass


@dataclass
class _Clock:
    """Marks of one turn on the monotonic clock."""

    end_of_audio: float
    first_audio: float | None = None
    last_audio: float | None = None
    audio_out_s: float = 0.0
    spoken_words: int = 0
    """Words of the sentences synthesized whole (a cancel or a failure cuts the rest)."""


class Pipeline:
    """The speech stages wired together; the engines are loaded once and reused for every turn."""

    def __init__(
        self,
        transcriber: Transcriber | None,
        responder: Responder,
        synthesizer: Synthesizer,
        speaker: Speaker,
        *,
        first_clause_words: int = 4,
    ) -> None:
        self.transcriber = transcriber
        self.responder = responder
        self.synthesizer = synthesizer
        self.speaker = speaker
        self.first_clause_words = first_clause_words

    def listen(self, chunks: Iterable[bytes], cancel: threading.Event | None = None,
               events: TurnEvents | None = None) -> tuple[Transcript, float, float]:
        """Feed audio chunks into the ASR; return the final transcript, the end-of-audio time and seconds heard.

        A ``Recording`` (a WAV file) is recognised as one whole utterance; anything else is a live
        stream, recognised while it arrives. ``events.audio_ended`` is called when the chunks end
        (before the recogniser's final pass), unless ``cancel`` stopped them.
        """
        if self.transcriber is None:
            raise NoSpeech("no speech recogniser is loaded")
        session = self.transcriber.session(whole=True) if isinstance(chunks, Recording) else self.transcriber.session()
        last_arrival = time.perf_counter()
        nbytes = 0
        for chunk in chunks:
            last_arrival = time.perf_counter()
            nbytes += len(chunk)
            partial = session.feed(chunk)
            if partial is not None and partial.text:
                _LOG.debug("partial: %s", partial.text)
            if cancel is not None and cancel.is_set():
                break
        if events is not None and not (cancel is not None and cancel.is_set()):
            events.audio_ended()
        transcript = session.finish()
        return transcript, last_arrival, nbytes / (SAMPLE_WIDTH * self.transcriber.rate)

    def run_turn(
        self,
        *,
        audio: Iterable[bytes] | None = None,
        text: str | None = None,
        cancel: threading.Event | None = None,
        turn_id: str | None = None,
        record: TurnRecord | None = None,
        events: TurnEvents | None = None,
    ) -> TurnRecord:
        """Run one turn from audio chunks (mono s16le at the ASR rate) or from text (no ASR).

        ``record``: filled in as the turn goes (the caller keeps what a failed turn did); a new one
        (with ``turn_id``) when not given. ``events`` hears when the audio ends and speaking starts."""
        cancel = cancel or threading.Event()
        events = events or NoEvents()
        if record is None:
            record = TurnRecord(turn_id=turn_id or uuid.uuid4().hex[:12])
        if text is None:
            if audio is None:
                raise ValueError("run_turn needs audio or text")
            transcript, end_of_audio, record.audio_in_s = self.listen(audio, cancel, events)
            record.asr_final_s = time.perf_counter() - end_of_audio
            record.asr_engine = transcript.engine
            question = transcript.text.strip()
            _LOG.info("[%s] heard (%s, %.2f s after end of audio): %r", record.turn_id, transcript.engine, record.asr_final_s, question)
            if not question:
                raise NoSpeech("no speech was recognised in the audio")
        else:
            end_of_audio = time.perf_counter()
            question = text.strip()
            if not question:
                raise NoSpeech("the question is empty")
        record.transcript = question
        record.llm_model = self.responder.model_name
        if cancel.is_set():
            record.cancelled = True
            return record
        asked = as_question(question)  # a written question, not a lower-case transcript
        if asked != question:
            _LOG.debug("[%s] asking the LLM: %r", record.turn_id, asked)
        self._speak_reply(asked, record, cancel, end_of_audio, events)
        return record

    def _speak_reply(self, question: str, record: TurnRecord, cancel: threading.Event, end_of_audio: float,
                     events: TurnEvents) -> None:
        sentences: queue.Queue[object] = queue.Queue()
        clock = _Clock(end_of_audio)
        errors: list[BaseException] = []
        worker = threading.Thread(
            target=self._tts_worker, args=(sentences, clock, cancel, errors, events), name=f"tts-{record.turn_id}",
            daemon=True,
        )
        worker.start()
        splitter = SentenceSplitter(self.first_clause_words)
        llm_start = time.perf_counter()
        try:
            for piece in self.responder.respond(question, cancel):
                for sentence in splitter.feed(piece):
                    sentences.put(sentence)
                    record.sentences += 1
                if errors:
                    cancel.set()
            if not cancel.is_set():
                for sentence in splitter.flush():
                    sentences.put(sentence)
                    record.sentences += 1
        finally:
            sentences.put(_DONE)
            record.llm_s = time.perf_counter() - llm_start
            worker.join()
        gen = self.responder.last
        record.reply = gen.text
        record.prompt_tokens = gen.prompt_tokens
        record.tokens = gen.tokens
        record.tps = gen.tps
        record.words = clock.spoken_words
        record.words_estimate = gen.words_estimate
        if gen.first_token_s is not None:
            record.first_token_s = (llm_start - end_of_audio) + gen.first_token_s
        if clock.first_audio is not None:
            record.first_audio_s = clock.first_audio - end_of_audio
        record.audio_out_s = clock.audio_out_s
        record.total_s = (clock.last_audio or time.perf_counter()) - end_of_audio
        record.cancelled = cancel.is_set()
        if errors:
            raise errors[0]
        _LOG.info(
            "[%s] reply (%d tokens, %d words, first audio %.2f s, total %.2f s%s): %r",
            record.turn_id, record.tokens, record.words, record.first_audio_s or -1.0, record.total_s,
            ", cancelled" if record.cancelled else "", record.reply,
        )

    def _tts_worker(
        self, sentences: queue.Queue[object], clock: _Clock, cancel: threading.Event, errors: list[BaseException],
        events: TurnEvents,
    ) -> None:
        while True:
            item = sentences.get()
            if item is _DONE:
                return
            if cancel.is_set() or errors:
                continue
            try:
                for clip in self.synthesizer.synthesize(str(item)):
                    if cancel.is_set():
                        break
                    now = time.perf_counter()
                    if clock.first_audio is None:
                        clock.first_audio = now
                        events.speaking()
                    clock.last_audio = now
                    clock.audio_out_s += clip.seconds
                    self.speaker.play(clip)
                else:
                    clock.spoken_words += word_count(str(item))
            except BaseException as exc:  # handed to the LLM thread, which re-raises it
                errors.append(exc)
                cancel.set()


def chunk_pcm(clip: AudioClip, chunk_s: float = 0.05) -> list[bytes]:
    """Split a mono clip into chunks of ``chunk_s`` seconds, as a microphone would deliver them."""
    step = max(1, int(clip.rate * chunk_s)) * SAMPLE_WIDTH * clip.channels
    return [clip.pcm[i : i + step] for i in range(0, len(clip.pcm), step)]
