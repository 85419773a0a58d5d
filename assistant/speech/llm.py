"""The reply writer: a Responder interface and its llama.cpp adapter (streaming, one resident model)."""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ModelError, ModelNotFound

_LOG = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


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
    """Why generation ended: ``eos``, ``length`` or ``cancelled``."""
    text: str = ""
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
    """Bounded conversation memory: the last question/answer pairs that fit."""

    max_turns: int
    turns: list[tuple[str, str]] = field(default_factory=list)

    def add(self, question: str, answer: str) -> None:
        if self.max_turns <= 0:
            return
        self.turns.append((question, answer))
        del self.turns[: max(0, len(self.turns) - self.max_turns)]

    def clear(self) -> None:
        self.turns.clear()


def check_gguf(path: Path) -> None:
    """Raise a clear error unless ``path`` is a readable GGUF file."""
    if not path.exists():
        raise ModelNotFound(f"LLM model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"LLM model {path} is not a file")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read LLM model {path}: {exc}") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(f"LLM model {path} is not a GGUF file (starts with {magic!r})")


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

    def prompt_tokens(self, question: str) -> list[int]:
        """Tokens of the full prompt, dropping the oldest memory until it fits the context."""
        turns = list(self.memory.turns)
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

    def start(self, question: str) -> tuple[Iterator[int], Generation]:
        """Begin a reply: the stream of sampled tokens (the appliance's samplers) and its fresh ``last`` record."""
        if self._llm is None:
            raise ModelError(f"LLM {self.model_name} is closed")
        llm = self._llm
        tokens = self.prompt_tokens(question)
        cached = _common_prefix(list(llm._input_ids), tokens)
        gen = Generation(prompt_total=len(tokens), prompt_tokens=len(tokens) - min(cached, len(tokens) - 1),
                         stop="length")
        self.last = gen
        llm.set_seed(self.seed)
        stream = llm.generate(tokens, temp=self.temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1,
                              reset=True)
        return stream, gen

    def respond(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
        t0 = time.perf_counter()
        stream, gen = self.start(question)
        llm = self._llm
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pieces: list[str] = []
        first_at = 0.0
        try:
            for token in stream:
                now = time.perf_counter()
                if cancel is not None and cancel.is_set():
                    gen.stop = "cancelled"
                    break
                if _is_eog(self._vocab, token):
                    gen.stop = "eos"
                    break
                gen.tokens += 1
                if gen.first_token_s is None:
                    gen.first_token_s = now - t0
                    first_at = now
                gen.decode_s = now - first_at
                text = decoder.decode(llm.detokenize([token]))
                if text:
                    pieces.append(text)
                    yield text
                if gen.tokens >= self.max_tokens:
                    break
                if cancel is not None and cancel.is_set():
                    gen.stop = "cancelled"
                    break
        finally:
            tail = decoder.decode(b"", final=True)
            if tail:
                pieces.append(tail)
            gen.gen_s = time.perf_counter() - t0
            gen.text = "".join(pieces).strip()
            if gen.stop != "cancelled" and gen.text:
                self.memory.add(question, gen.text)
        if tail:
            yield tail
        _LOG.debug("generated %d tokens (%s) in %.2f s", gen.tokens, gen.stop, gen.gen_s)


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
