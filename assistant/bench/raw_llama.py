"""llama.cpp through its C API only: a decode loop and per-token log-probabilities, no Python layer between tokens."""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ModelError
from assistant.models.gguf_info import check_gguf

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawRun:
    """One greedy generation by the raw loop."""

    prompt_tokens: int
    """Tokens evaluated before the first sample."""
    tokens: int
    """Tokens sampled (end-of-generation tokens are not special here: the loop runs the count it is given)."""
    prompt_s: float
    """Prompt evaluation plus the first sample (s)."""
    decode_s: float
    """First sampled token to last sampled token (s)."""

    @property
    def tps(self) -> float | None:
        """Generation speed after the first token (tokens/s), defined as in ``Generation.tps``."""
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else None


class RawLlama:
    """A GGUF model and one context made with ``llama_model_load_from_file``/``llama_init_from_model``.

    The context mirrors what ``LlamaResponder`` gets from llama-cpp-python's ``Llama`` (same
    ``n_ctx``, ``n_batch`` 512, ``n_ubatch`` 512, flash attention off, the same thread count for
    generation and for batches), so that timing differences come from the layers above llama.cpp.
    """

    def __init__(self, path: Path, *, n_ctx: int, threads: int, n_batch: int = 512) -> None:
        check_gguf(path)
        import llama_cpp
        from llama_cpp import _logger

        if _logger.logger.level == logging.NOTSET:
            _logger.set_verbose(False)  # llama.cpp prints every tensor it loads unless told otherwise
        self._c: Any = llama_cpp
        llama_cpp.llama_backend_init()
        self.path = path
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.threads = threads
        mparams = llama_cpp.llama_model_default_params()
        t0 = time.perf_counter()
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not self._model:
            raise ModelError(f"llama.cpp could not load {path}")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ModelError(f"llama.cpp could not make a context for {path}")
        self.load_s = time.perf_counter() - t0
        """Model load plus context creation (s)."""
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._sampler = self._chain(llama_cpp.llama_sampler_init_greedy())

    def _chain(self, *samplers: Any) -> Any:
        c = self._c
        chain = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params())
        for sampler in samplers:
            c.llama_sampler_chain_add(chain, sampler)
        return chain

    # -- plumbing ------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        """Tokens of ``text`` (special tokens such as ``<|im_start|>`` are parsed)."""
        data = text.encode("utf-8")
        room = len(data) + 8
        buf = (self._c.llama_token * room)()
        n = self._c.llama_tokenize(self._vocab, data, len(data), buf, room, add_bos, True)
        if n < 0:
            raise ModelError(f"{self.path.name}: tokenizing {len(data)} bytes needs {-n} tokens, room for {room}")
        return list(buf[:n])

    def clear(self) -> None:
        """Forget everything in the KV cache."""
        self._c.llama_memory_clear(self._c.llama_get_memory(self._ctx), True)

    def _decode(self, tokens: Sequence[int], pos0: int, *, all_logits: bool) -> None:
        b = self._batch
        n = len(tokens)
        b.n_tokens = n
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if all_logits or i == n - 1 else 0
        rc = self._c.llama_decode(self._ctx, b)
        if rc != 0:
            raise ModelError(f"llama_decode failed on {self.path.name} (code {rc}, {n} tokens at position {pos0})")

    def eval_prompt(self, tokens: Sequence[int]) -> float:
        """Evaluate ``tokens`` from position 0 on a cleared cache, in batches; returns the seconds it took."""
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens do not fit the context of {self.n_ctx}")
        self.clear()
        t0 = time.perf_counter()
        for start in range(0, len(tokens), self.n_batch):
            self._decode(tokens[start : start + self.n_batch], start, all_logits=False)
        return time.perf_counter() - t0

    # -- measurements --------------------------------------------------------------------------

    def greedy(self, prompt: Sequence[int], n_tokens: int) -> RawRun:
        """Evaluate ``prompt``, then sample greedily and decode one token at a time, ``n_tokens`` samples in all."""
        return self._generate(self._sampler, prompt, n_tokens)

    def sampled(self, prompt: Sequence[int], n_tokens: int, *, temperature: float, seed: int) -> RawRun:
        """As ``greedy``, with the sampler chain llama-cpp-python builds for ``LlamaResponder``'s settings.

        Penalties (last 64 tokens, repeat 1.1), top-k 40, typical 1.0, top-p 0.95, min-p 0.05, the
        temperature, then a seeded draw: the same C samplers in the same order, so that comparing
        this loop with the responder leaves only the Python layers between them.
        """
        c = self._c
        chain = self._chain(c.llama_sampler_init_penalties(self.n_vocab, 64, 1.1, 0.0, 0.0),
                            c.llama_sampler_init_top_k(40), c.llama_sampler_init_typical(1.0, 1),
                            c.llama_sampler_init_top_p(0.95, 1), c.llama_sampler_init_min_p(0.05, 1),
                            c.llama_sampler_init_temp(temperature), c.llama_sampler_init_dist(seed))
        try:
            return self._generate(chain, prompt, n_tokens)
        finally:
            c.llama_sampler_free(chain)

    def _generate(self, sampler: Any, prompt: Sequence[int], n_tokens: int) -> RawRun:
        if n_tokens < 1:
            raise ValueError("n_tokens must be at least 1")
        if len(prompt) + n_tokens > self.n_ctx:
            raise ValueError(f"{len(prompt)} + {n_tokens} tokens do not fit the context of {self.n_ctx}")
        c = self._c
        t0 = time.perf_counter()
        self.eval_prompt(prompt)
        token = c.llama_sampler_sample(sampler, self._ctx, -1)
        t_first = time.perf_counter()
        pos = len(prompt)
        one = [0]
        for _ in range(n_tokens - 1):
            one[0] = token
            self._decode(one, pos, all_logits=False)
            pos += 1
            token = c.llama_sampler_sample(sampler, self._ctx, -1)
        t_last = time.perf_counter()
        return RawRun(prompt_tokens=len(prompt), tokens=n_tokens, prompt_s=t_first - t0, decode_s=t_last - t_first)

    def logprobs(self, window: Sequence[int]) -> np.ndarray:
        """Natural-log probability of ``window[j + 1]`` given ``window[: j + 1]``, for every j (len - 1 values)."""
        n = len(window)
        if not 2 <= n <= min(self.n_ctx, self.n_batch):
            raise ValueError(f"a window must hold 2..{min(self.n_ctx, self.n_batch)} tokens, got {n}")
        self.clear()
        self._decode(window, 0, all_logits=True)
        ptr = self._c.llama_get_logits(self._ctx)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n, self.n_vocab))
        rows = logits[:-1].astype(np.float64)
        top = rows.max(axis=1, keepdims=True)
        lse = np.log(np.exp(rows - top).sum(axis=1)) + top[:, 0]
        targets = np.asarray(window[1:], dtype=np.int64)
        return rows[np.arange(n - 1), targets] - lse

    def close(self) -> None:
        """Free the sampler, batch, context and model (safe to call twice)."""
        c = self._c
        if getattr(self, "_sampler", None) is not None:
            c.llama_sampler_free(self._sampler)
            self._sampler = None
            c.llama_batch_free(self._batch)
        if getattr(self, "_ctx", None):
            c.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            c.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> RawLlama:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
