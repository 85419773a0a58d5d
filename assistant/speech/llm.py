"""The reply writer: a Responder interface and its llama.cpp adapter (streaming, one resident model)."""

from __future__ import annotations

import codecs
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ModelError
from assistant.models.gguf_info import check_gguf
from assistant.speech.words import words

_LOG = logging.getLogger(__name__)



@dataclass
class Generation:
    """Counts and timings of the last reply."""

    prompt_tokens: int = 0
    """Tokens of the prompt that had to be evaluated (after reusing the cached prefix)."""
    prompt_total: int = 0
    """Tokens in the whole prompt (system prompt, memory and question)."""
    tokens: int = 0
    """Generated tokens."""
    first_token_s: float | None = None
    """Start of the call to the first generated token (s)."""
    gen_s: float = 0.0
    """Start of the call to the last token (s)."""
    decode_s: float = 0.0
    """First to last token (s): the pure generation time."""
    stop: str = ""
    """Why generation ended: ``eos``, ``length``, ``cancelled`` or ``copy`` (it went on with a sentence
    of an earlier reply, which was not said)."""
    text: str = ""
    copy_restarted: bool = False
    """The reply began as a copy of an earlier one, so it was written again without the memory."""
    words_estimate: str | None = None
    """How the reply's words are estimated rather than counted (a speed twin's stand-in reply); None: counted."""

    @property
    def tps(self) -> float | None:
        """Generation speed after the first token (tokens/s)."""
        if self.tokens > 1 and self.decode_s > 0:
            return (self.tokens - 1) / self.decode_s
        return None


class Responder(Protocol):
    """Writes the reply to a question, streaming text pieces as they are generated."""

    model_name: str
    last: Generation

    def respond(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
        """Yield the reply in pieces; stop early when ``cancel`` is set."""
        ...

    def reset(self) -> None:
        """Forget the conversation."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...


@dataclass
class Memory:
    """Bounded conversation memory: at most ``max_turns`` question/answer pairs.

    When it is full, the older half is forgotten at once rather than one pair at every question. The
    prompt begins with the memory, and llama.cpp reuses what it has evaluated only up to the first token
    that differs: dropping the oldest pair every time changes the prompt right after the system prompt,
    so the whole remembered conversation (about 400 tokens with four pairs) would be evaluated again
    before every reply, which costs about as much as the reply itself. Forgetting in halves keeps the
    prefix unchanged between drops, so most questions evaluate only what is new.
    """

    max_turns: int
    turns: list[tuple[str, str]] = field(default_factory=list)

    def add(self, question: str, answer: str) -> None:
        if self.max_turns <= 0:
            return
        self.turns.append((question, answer))
        if len(self.turns) > self.max_turns:
            del self.turns[: len(self.turns) - max(1, self.max_turns // 2)]

    def clear(self) -> None:
        self.turns.clear()


class LlamaResponder:
    """llama-cpp-python adapter: chat template from the GGUF, token-level streaming, cancellable."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 2048,
        threads: int = 0,
        max_tokens: int = 96,
        temperature: float = 0.2,
        seed: int = 42,
        system_prompt: str = "",
        history_turns: int = 4,
    ) -> None:
        self.model_path = model_path
        self.model_name = model_path.name
        self.n_ctx = n_ctx
        self.threads = threads or (os.cpu_count() or 1)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.system_prompt = system_prompt
        self.memory = Memory(history_turns)
        self.last = Generation()
        self.load_s = 0.0
        self._llm: Any = None
        self._format: Any = None
        self._vocab: Any = None
        self._load()

    def _load(self) -> None:
        check_gguf(self.model_path)
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ModelError(f"llama-cpp-python is not installed ({exc}); install the 'engines' extra") from exc
        t0 = time.perf_counter()
        try:
            llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                seed=self.seed,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
        self.load_s = time.perf_counter() - t0
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            llm.close()
            raise ModelError(f"{self.model_path} has no chat template in its metadata; use an instruct model")
        eos_id = llm.token_eos()
        bos_id = llm.token_bos()
        eos = llm.detokenize([eos_id], special=True).decode("utf-8", "replace") if eos_id >= 0 else ""
        bos = llm.detokenize([bos_id], special=True).decode("utf-8", "replace") if bos_id >= 0 else ""
        self._format = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._vocab = _vocab(llm)
        self._llm = llm
        _LOG.info("LLM %s loaded in %.2f s (n_ctx=%d, threads=%d)", self.model_name, self.load_s, self.n_ctx, self.threads)

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
            _LOG.debug("LLM %s closed", self.model_name)

    def reset(self) -> None:
        self.memory.clear()

    def _messages(self, question: str, turns: list[tuple[str, str]]) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for q, a in turns:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": question})
        return messages

    def prompt_tokens(self, question: str, *, with_memory: bool = True) -> list[int]:
        """Tokens of the full prompt, dropping the oldest memory until it fits the context."""
        turns = list(self.memory.turns) if with_memory else []
        budget = self.n_ctx - self.max_tokens - 8
        while True:
            prompt = self._format(messages=self._messages(question, turns)).prompt
            tokens: list[int] = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) <= budget or not turns:
                break
            turns.pop(0)
        if len(tokens) > budget:
            keep = max(1, budget)
            _LOG.warning("question is longer than the context allows; keeping its last %d tokens", keep)
            tokens = tokens[-keep:]
        return tokens

    def respond(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
        """Yield the reply in pieces.

        With conversation memory, the first ``COPY_CHECK_WORDS`` words are held until they show
        whether the model is starting to say one of its earlier replies again (a small model given
        its last answer tends to repeat it, nearly word for word, to the next question); if so, that
        start is dropped and the question is answered without the memory. The held words cost no
        latency that matters: the first clause goes to speech only once it has a few words anyway.
        """
        if self._llm is None:
            raise ModelError(f"LLM {self.model_name} is closed")
        t0 = time.perf_counter()
        # only replies to other questions: the same question asked again may well get the same answer
        earlier = [words(a) for q, a in self.memory.turns if words(q) != words(question)]
        starts = [w[:COPY_CHECK_WORDS] for w in earlier if len(w) >= COPY_CHECK_WORDS]
        asked = set(words(question))
        runs = {tuple(w[i : i + COPY_RUN_WORDS]) for w in earlier for i in range(len(w) - COPY_RUN_WORDS + 1)}
        gen = self._start()
        pieces: list[str] = []
        held: list[str] = []
        stage = "start" if starts else "free"
        copied = False
        try:
            for text in self._generate(gen, self.prompt_tokens(question), cancel, t0):
                if stage == "free":
                    pieces.append(text)
                    yield text
                    continue
                held.append(text)
                sofar = "".join(held)
                if stage == "start":
                    start = words(sofar)
                    if len(start) <= COPY_CHECK_WORDS:  # the next word has begun: these are complete
                        continue
                    if _same_start(start, starts, asked):
                        copied = True
                        break
                    stage = "first"
                elif stage == "later":
                    ends = list(_SENTENCE_END.finditer(sofar))
                    if not ends:
                        continue
                    if _copies(sofar[: ends[-1].end()], runs):
                        _LOG.info("the reply went on with a sentence of an earlier one; it ends here")
                        held = []
                        gen.stop = "copy"
                        break
                    cut = ends[-1].end()
                    held = [sofar[cut:]] if sofar[cut:] else []
                    pieces.append(sofar[:cut])
                    yield sofar[:cut]
                    continue
                pieces.extend(held)
                yield from held
                held = []
                if stage == "first" and _SENTENCE_END.search("".join(pieces) + " "):
                    stage = "later"  # the first sentence is out: the next ones are checked whole
            else:
                rest = "".join(held)
                if stage == "start" and _same_start(words(rest), starts, asked):
                    copied = True
                elif rest and not (stage == "later" and _copies(rest, runs)):
                    pieces.append(rest)
                    yield rest
            if copied:
                _LOG.info("the reply began as a copy of an earlier one (%r); answering without the conversation "
                          "memory", "".join(held).strip())
                gen = self._start()
                gen.copy_restarted = True
                for text in self._generate(gen, self.prompt_tokens(question, with_memory=False), cancel, t0):
                    pieces.append(text)
                    yield text
        finally:
            gen.gen_s = time.perf_counter() - t0
            gen.text = "".join(pieces).strip()
            if gen.stop != "cancelled" and gen.text:
                self.memory.add(question, gen.text)
        _LOG.debug("generated %d tokens (%s) in %.2f s", gen.tokens, gen.stop, gen.gen_s)

    def _start(self) -> Generation:
        gen = Generation()
        self.last = gen
        return gen

    def start(self, question: str) -> tuple[Iterator[int], Generation]:
        """Begin a reply without reading it: the stream of sampled tokens (the appliance's samplers, the
        conversation memory in the prompt) and its fresh ``last`` record, for a caller that counts the
        tokens itself (the speed twin)."""
        if self._llm is None:
            raise ModelError(f"LLM {self.model_name} is closed")
        gen = self._start()
        gen.stop = "length"
        return self._sample(gen, self.prompt_tokens(question)), gen

    def _sample(self, gen: Generation, tokens: list[int]) -> Iterator[int]:
        """The sampled tokens of a reply to the prompt ``tokens`` (reusing the cached prefix); the prompt's
        figures go into ``gen``."""
        llm = self._llm
        cached = _common_prefix(list(llm._input_ids), tokens)
        gen.prompt_total = len(tokens)
        gen.prompt_tokens = len(tokens) - min(cached, len(tokens) - 1)
        llm.set_seed(self.seed)
        stream: Iterator[int] = llm.generate(
            tokens, temp=self.temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, reset=True
        )
        return stream

    def _counted(self, gen: Generation, stream: Iterator[int], cancel: threading.Event | None, t0: float, *,
                 until_eog: bool = True) -> Iterator[int]:
        """The tokens of ``stream`` as they come, counted and timed in ``gen`` (first token from ``t0``);
        ends, with ``gen.stop`` said, on a cancel, at the end of the text (``until_eog``) or at
        ``max_tokens``."""
        first_at = 0.0
        for token in stream:
            now = time.perf_counter()
            if cancel is not None and cancel.is_set():
                gen.stop = "cancelled"
                return
            if until_eog and _is_eog(self._vocab, token):
                gen.stop = "eos"
                return
            gen.tokens += 1
            if gen.first_token_s is None:
                gen.first_token_s = now - t0
                first_at = now
            gen.decode_s = now - first_at
            yield token
            if gen.tokens >= self.max_tokens:
                gen.stop = "length"
                return
            if cancel is not None and cancel.is_set():
                gen.stop = "cancelled"
                return

    def _generate(self, gen: Generation, tokens: list[int], cancel: threading.Event | None,
                  t0: float) -> Iterator[str]:
        """Sample a reply to the prompt ``tokens`` (reusing the cached prefix), filling in ``gen``."""
        llm = self._llm
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        gen.stop = ""
        for token in self._counted(gen, self._sample(gen, tokens), cancel, t0):
            text = decoder.decode(llm.detokenize([token]))
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if not gen.stop:
            gen.stop = "length"
        if tail:
            yield tail


COPY_CHECK_WORDS = 5
"""A reply whose first this many words are those of an earlier reply in memory counts as a copy."""
COPY_RUN_WORDS = 6
"""A later sentence holding this many consecutive words of an earlier reply counts as copied."""
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


COPY_START_MATCHES = 3
"""... or when this many of those first words stand where they stood in an earlier reply's start,
not counting words of the question (answers to parallel questions rightly start alike)."""


def _same_start(start: list[str], starts: list[list[str]], asked: set[str]) -> bool:
    """True when the first words of a reply are (nearly) those of an earlier reply (see above)."""
    head = start[:COPY_CHECK_WORDS]
    if len(head) < COPY_CHECK_WORDS:
        return False
    for other in starts:
        if head == other:
            return True
        if sum(a == b and a not in asked for a, b in zip(head, other)) >= COPY_START_MATCHES:
            return True
    return False


def _copies(text: str, runs: set[tuple[str, ...]]) -> bool:
    """True when ``text`` holds a run of ``COPY_RUN_WORDS`` words found in ``runs``."""
    w = words(text)
    return any(tuple(w[i : i + COPY_RUN_WORDS]) in runs for i in range(len(w) - COPY_RUN_WORDS + 1))


def _vocab(llm: Any) -> Any:
    import llama_cpp

    return llama_cpp.llama_model_get_vocab(llm.model)


def _is_eog(vocab: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(vocab, token))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
