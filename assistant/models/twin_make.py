"""Make a speed twin: write the F16 file with the ``gguf`` package, quantize it with the ladder builder, check the rungs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.atomic import commit_file
from assistant.errors import ModelError
from assistant.models.gguf_info import GgufInfo, read_gguf_info
from assistant.models.ladder import LadderEntry, build_ladder, expected_tensor_type
from assistant.models.tier_ladder import ladder_to_tiers
from assistant.models.twin import (KEY_LABEL, KEY_SHAPES_OF, KEY_WORDS_BASIS, KEY_WORDS_PER_TOKEN, LABEL, TWIN_DIR,
                                   twin_tiers_file)
from assistant.power.tiers import TierConfig

_LOG = logging.getLogger(__name__)

K_BLOCK = 256
"""Elements per K-quant block: a row must be a multiple of it, or llama.cpp falls back to another type."""
TWIN_TYPES: tuple[str, ...] = ("Q8_0", "Q4_K_M", "Q2_K", "TQ2_0")
"""The rungs ``make-twin`` builds by default: the study's Q8 / Q4 / Q2 and the ternary type."""
SEED = 1234
"""Seed of the random weights: the same shapes give the same file, so the rungs are reused on a remake."""
_FLOAT = frozenset({"F32", "F16", "BF16"})


@dataclass(frozen=True)
class TwinShape:
    """The shapes of a llama-architecture model: what makes a twin decode like the real one."""

    name: str
    """The model these shapes are copied from, e.g. ``Llama-3.2-1B``."""
    hidden: int
    """Embedding width (``n_embd``)."""
    layers: int
    ffn: int
    """Feed-forward width."""
    heads: int
    kv_heads: int
    context_length: int = 131072
    rope_freq_base: float = 500000.0
    rms_eps: float = 1e-5

    def check(self) -> None:
        """ModelError unless the widths fit K-quant blocks and the heads divide the width."""
        if min(self.hidden, self.layers, self.ffn, self.heads, self.kv_heads) <= 0:
            raise ModelError(f"twin shape {self}: every size must be positive")
        if self.hidden % K_BLOCK or self.ffn % K_BLOCK:
            raise ModelError(f"twin shape {self.name}: hidden {self.hidden} and FFN {self.ffn} must be multiples of "
                             f"{K_BLOCK}, or the K-quant rungs fall back to other types and measure nothing")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ModelError(f"twin shape {self.name}: {self.heads} heads must divide hidden {self.hidden} and be a "
                             f"multiple of {self.kv_heads} KV heads")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def tensors(self, vocab: int) -> list[tuple[str, tuple[int, ...]]]:
        """(name, numpy shape) of every tensor, as llama.cpp's llama architecture names them (tied output)."""
        kv = self.kv_heads * self.head_dim
        out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (vocab, self.hidden))]
        for i in range(self.layers):
            b = f"blk.{i}"
            out += [(f"{b}.attn_norm.weight", (self.hidden,)), (f"{b}.attn_q.weight", (self.hidden, self.hidden)),
                    (f"{b}.attn_k.weight", (kv, self.hidden)), (f"{b}.attn_v.weight", (kv, self.hidden)),
                    (f"{b}.attn_output.weight", (self.hidden, self.hidden)), (f"{b}.ffn_norm.weight", (self.hidden,)),
                    (f"{b}.ffn_gate.weight", (self.ffn, self.hidden)), (f"{b}.ffn_up.weight", (self.ffn, self.hidden)),
                    (f"{b}.ffn_down.weight", (self.hidden, self.ffn))]
        out.append(("output_norm.weight", (self.hidden,)))
        return out

    def parameters(self, vocab: int) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.tensors(vocab))


LLAMA_3_2_1B = TwinShape("Llama-3.2-1B", hidden=2048, layers=16, ffn=8192, heads=32, kv_heads=8)
"""Llama-3.2-1B (the LLMPi study's 1B model and the catalogue's Pi 5 model): memory-bound on a Pi 5."""


@dataclass(frozen=True)
class WordsPerToken:
    """Words a real reply has per generated token, and where that was measured."""

    value: float
    basis: str


def measure_words_per_token(model: Path, questions: Sequence[str], *, system_prompt: str, max_tokens: int = 96,
                            threads: int = 0) -> WordsPerToken:
    """Ask ``model`` (a real model with the twin's tokenizer) the questions, greedy; words over tokens of its replies."""
    from assistant.speech.llm import LlamaResponder
    from assistant.speech.sentences import word_count

    if not questions:
        raise ModelError("no questions to measure words per token with")
    responder = LlamaResponder(model, n_ctx=1024, threads=threads, max_tokens=max_tokens, temperature=0.0,
                               system_prompt=system_prompt, history_turns=0)
    words = tokens = 0
    try:
        for question in questions:
            words += word_count("".join(responder.respond(question)))
            tokens += responder.last.tokens
    finally:
        responder.close()
    if not tokens or not words:
        raise ModelError(f"{model.name} generated nothing to count words per token from")
    basis = (f"measured on {model.name}: {len(questions)} drain-corpus questions, greedy, the appliance's system "
             f"prompt, {words} words / {tokens} tokens")
    return WordsPerToken(words / tokens, basis)


def _copy_tokenizer(writer: Any, source: Path) -> int:
    """Copy every ``tokenizer.*`` key (vocabulary, merges, special ids, chat template) from ``source``; returns the vocab size."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(source))
    except (ValueError, OSError) as exc:
        raise ModelError(f"cannot read the tokenizer of {source}: {exc}") from exc
    vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        types = field.types
        value = field.contents()
        sub = types[1] if types[0] == gguf.GGUFValueType.ARRAY and len(types) > 1 else None
        writer.add_key_value(key, value, types[0], sub_type=sub)
        if key == "tokenizer.ggml.tokens":
            vocab = len(value)
    if not vocab or "tokenizer.chat_template" not in reader.fields:
        raise ModelError(f"{source} has no vocabulary or no chat template to give the twin")
    return vocab


def write_twin(dest: Path, shape: TwinShape, tokenizer_from: Path, words: WordsPerToken, *,
               seed: int = SEED) -> Path:
    """Write the twin as F16 to ``dest`` (atomically): ``shape``'s tensors with random weights, the tokenizer
    and chat template of ``tokenizer_from``, and the twin marker. Tensors are streamed, one in memory at a time."""
    import gguf

    shape.check()
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    rng = np.random.default_rng(seed)
    try:
        writer = gguf.GGUFWriter(str(tmp), "llama")
        writer.add_key_value(KEY_LABEL, LABEL, gguf.GGUFValueType.STRING)
        writer.add_key_value(KEY_SHAPES_OF, shape.name, gguf.GGUFValueType.STRING)
        writer.add_key_value(KEY_WORDS_PER_TOKEN, float(words.value), gguf.GGUFValueType.FLOAT32)
        writer.add_key_value(KEY_WORDS_BASIS, words.basis, gguf.GGUFValueType.STRING)
        writer.add_name(f"speed twin of {shape.name}")
        writer.add_description(LABEL)
        writer.add_block_count(shape.layers)
        writer.add_context_length(shape.context_length)
        writer.add_embedding_length(shape.hidden)
        writer.add_feed_forward_length(shape.ffn)
        writer.add_head_count(shape.heads)
        writer.add_head_count_kv(shape.kv_heads)
        writer.add_rope_dimension_count(shape.head_dim)
        writer.add_rope_freq_base(shape.rope_freq_base)
        writer.add_layer_norm_rms_eps(shape.rms_eps)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        vocab = _copy_tokenizer(writer, tokenizer_from)
        writer.add_vocab_size(vocab)
        tensors = shape.tensors(vocab)
        for name, dims in tensors:
            dtype = np.float32 if len(dims) == 1 else np.float16
            writer.add_tensor_info(name, dims, np.dtype(dtype), int(np.prod(dims)) * np.dtype(dtype).itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, dims in tensors:
            if len(dims) == 1:
                writer.write_tensor_data(np.ones(dims, dtype=np.float32))  # RMS norm weights
            else:  # scaled so activations stay finite through every layer
                data = rng.standard_normal(dims, dtype=np.float32)
                data *= 1.0 / np.sqrt(dims[1])
                writer.write_tensor_data(data.astype(np.float16))
        writer.close()
        commit_file(tmp, dest)
    except OSError as exc:
        raise ModelError(f"cannot write the speed twin {dest}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def k_quant_problems(entry: LadderEntry) -> list[str]:
    """Why a K-quant rung is not really K-quant (a quantized tensor of a legacy type, or a fallback), if it is not."""
    if not expected_tensor_type(entry.requested).endswith("_K"):
        return []
    legacy = {t: n for t, n in entry.info.tensors_by_type.items() if t not in _FLOAT and not t.endswith("_K")}
    out = [f"{entry.requested} holds {n} {t} tensor(s)" for t, n in legacy.items()]
    if entry.fallback_tensors:
        out.append(f"llama.cpp reported {entry.fallback_tensors} fallback tensor(s) for {entry.requested}")
    return out


@dataclass(frozen=True)
class TwinBuild:
    """What ``make_twin`` did and where everything is."""

    folder: Path
    source: Path
    """The F16 file (deleted after quantizing unless kept)."""
    source_info: GgufInfo
    source_kept: bool
    write_s: float
    """Seconds to write the F16 file."""
    rungs: tuple[LadderEntry, ...]
    tiers: TierConfig
    tiers_file: Path
    words: WordsPerToken


Progress = Callable[[str], None]


def twin_folder(models_dir: Path) -> Path:
    """Where the twin lives: ``MODELS_DIR/speed-twin``."""
    return models_dir.expanduser() / TWIN_DIR


def make_twin(models_dir: Path, words: WordsPerToken, *, tokenizer_from: Path, shape: TwinShape = LLAMA_3_2_1B,
              types: Sequence[str] = TWIN_TYPES, keep_source: bool = False, threads: int = 0,
              write_tiers: Callable[[Path, TierConfig], None] | None = None,
              progress: Progress | None = None) -> TwinBuild:
    """Write the F16 twin, quantize it with the ladder builder, check that every K-quant rung is K-quant,
    make its tier ladder (``write_tiers`` saves it), and delete the F16 file unless ``keep_source``.

    ``write_tiers`` is given the tiers file's path and the ladder (the command layer's config writer).
    """
    say = progress or (lambda msg: _LOG.info("%s", msg))
    folder = twin_folder(models_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create {folder}: {exc}") from exc
    source = folder / f"{shape.name}-speed-twin.F16.gguf"
    say(f"writing {source.name} ({shape.parameters(49152) * 2 / 1e9:.1f} GB for a 49k vocabulary)")
    t0 = time.perf_counter()
    write_twin(source, shape, tokenizer_from, words)
    write_s = time.perf_counter() - t0
    source_info = read_gguf_info(source)
    say(f"wrote {source_info.size_mb:,.0f} MB in {write_s:.1f} s; quantizing to {', '.join(types)}")
    entries = build_ladder(source, folder / "ladder", types, threads=threads, allow_ternary=True)
    problems = [p for e in entries[1:] for p in k_quant_problems(e)]
    if problems:
        raise ModelError(f"the speed twin's K-quant rungs are not all K-quant: {'; '.join(problems)}")
    rungs = tuple(entries[1:])
    tiers = ladder_to_tiers(rungs)
    tiers_file = twin_tiers_file(models_dir)
    if write_tiers is not None:
        write_tiers(tiers_file, tiers)
    kept = keep_source
    if not keep_source:
        try:
            source.unlink()
        except OSError as exc:
            _LOG.warning("cannot delete %s: %s", source, exc)
            kept = True
    return TwinBuild(folder=folder, source=source, source_info=source_info, source_kept=kept, write_s=write_s,
                     rungs=rungs, tiers=tiers, tiers_file=tiers_file, words=words)
