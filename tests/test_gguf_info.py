"""Reading GGUF metadata and the real tensor types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.errors import ModelError, ModelNotFound
from assistant.models.gguf_info import read_gguf_info


def tiny_gguf(path: Path) -> Path:
    """A two-tensor GGUF written with the gguf package: 64 F32 weights and 128 F16 weights."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(256)
    w.add_tensor("a.weight", np.ones(64, dtype=np.float32))
    w.add_tensor("b.weight", np.ones((2, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_tiny_file_exact_numbers(tmp_path: Path) -> None:
    info = read_gguf_info(tiny_gguf(tmp_path / "tiny.gguf"))
    assert info.tensor_count == 2
    assert info.tensors_by_type == {"F32": 1, "F16": 1}
    assert info.params_by_type == {"F32": 64, "F16": 128}
    assert info.parameters == 192 and info.tensor_bytes == 64 * 4 + 128 * 2
    assert info.bits_per_weight == pytest.approx(512 * 8 / 192)
    assert info.dominant_type == "F16"  # only float tensors: the one with most weights
    assert (info.architecture, info.name, info.context_length) == ("llama", "tiny", 256)
    assert info.chat_template is False and info.file_type is None
    assert info.size_bytes == (tmp_path / "tiny.gguf").stat().st_size


def test_embedded_smollm2(smollm2: Path) -> None:
    info = read_gguf_info(smollm2)
    assert info.tensor_count == 272
    assert info.tensors_by_type == {"Q4_1": 210, "Q8_0": 1, "F32": 61}  # the token embedding is Q8_0
    assert info.parameters == 134_515_008
    assert info.bits_per_weight == pytest.approx(5.744, abs=0.001)
    assert info.dominant_type == "Q4_1" and info.file_type == "MOSTLY_Q4_1"
    assert info.architecture == "llama" and info.context_length == 8192 and info.chat_template
    assert info.type_summary() == "Q4_1:210 Q8_0:1 F32:61"
    assert info.to_dict()["bits_per_weight"] == pytest.approx(5.7437)


def test_truncated_file(tmp_path: Path) -> None:
    data = tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    for cut in (3, 40, len(data) // 2, len(data) - 8):
        broken = tmp_path / f"cut{cut}.gguf"
        broken.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=str(broken)):
            read_gguf_info(broken)


def test_not_gguf_empty_and_missing(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("<html>404 not found</html>")
    with pytest.raises(ModelError, match="not a GGUF file"):
        read_gguf_info(text)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelError):
        read_gguf_info(empty)
    with pytest.raises(ModelNotFound):
        read_gguf_info(tmp_path / "absent.gguf")
