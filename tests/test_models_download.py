"""Resumable downloads against a real loopback HTTP server: cuts, Range, 206/200/416, stated hashes, errors."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from models_fixtures import serve, sha256_of, unused_port

from assistant.errors import InstallError
from assistant.models.download import fetch, sha256_from_headers

HINT = "use --from FILE"


@pytest.fixture
def www(tmp_path: Path) -> Path:
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(hashlib.sha256(b"seed").digest() * 40_000)  # 1.28 MB of varied bytes
    return folder


def test_fresh_download(www: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    with serve(www) as server:
        got = fetch(f"{server.url}/blob.bin", tmp_path / "blob.part", expected_size=None, hint=HINT,
                    progress=lambda d, t: calls.append((d, t)))
    assert got.sha256 == sha256_of(www / "blob.bin") and got.size == 1_280_000 and got.resumed_from == 0
    assert got.server_sha256 is None and calls[-1] == (1_280_000, 1_280_000)
    assert [r.range for r in server.requests] == [None]


def test_cut_then_resumed_with_range(www: Path, tmp_path: Path) -> None:
    part = tmp_path / "blob.part"
    with serve(www) as server:
        server.cut_after = 500_000
        with pytest.raises(InstallError, match=r"(cut|ended|stopped) after 500000 of 1280000 bytes.*is kept"):
            fetch(f"{server.url}/blob.bin", part, expected_size=1_280_000, hint=HINT)
        assert part.stat().st_size == 500_000
        got = fetch(f"{server.url}/blob.bin", part, expected_size=1_280_000, hint=HINT)
    assert got.sha256 == sha256_of(www / "blob.bin") and got.resumed_from == 500_000
    assert [(r.range, r.status) for r in server.requests] == [(None, 200), ("bytes=500000-", 206)]
    assert server.body_bytes("blob.bin") == 1_280_000  # nothing was downloaded twice


def test_server_ignoring_range_restarts(www: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    part = tmp_path / "blob.part"
    part.write_bytes((www / "blob.bin").read_bytes()[:300_000])
    with serve(www) as server:
        server.ignore_range = True
        got = fetch(f"{server.url}/blob.bin", part, expected_size=1_280_000, hint=HINT)
    assert got.sha256 == sha256_of(www / "blob.bin") and got.resumed_from == 0 and part.stat().st_size == 1_280_000
    assert [(r.range, r.status) for r in server.requests] == [("bytes=300000-", 200)]
    assert any("ignored the byte range" in m for m in caplog.messages)


def test_complete_part_answers_416_and_is_kept(www: Path, tmp_path: Path) -> None:
    part = tmp_path / "blob.part"
    part.write_bytes((www / "blob.bin").read_bytes())
    with serve(www) as server:
        got = fetch(f"{server.url}/blob.bin", part, expected_size=1_280_000, hint=HINT)
    assert got.sha256 == sha256_of(www / "blob.bin") and got.resumed_from == 1_280_000
    assert [(r.status, r.sent) for r in server.requests] == [(416, 0)]


def test_part_that_is_not_a_prefix_is_replaced(www: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    part = tmp_path / "blob.part"
    part.write_bytes(b"x" * 2_000_000)  # longer than the file: cannot be a prefix of it
    with serve(www) as server:
        got = fetch(f"{server.url}/blob.bin", part, expected_size=None, hint=HINT)
    assert got.sha256 == sha256_of(www / "blob.bin")
    assert [(r.range, r.status) for r in server.requests] == [("bytes=2000000-", 416), (None, 200)]


def test_hash_stated_by_a_redirect_and_by_an_etag(www: Path, tmp_path: Path) -> None:
    digest = sha256_of(www / "blob.bin")
    with serve(www) as server:
        server.stated["blob.bin"] = digest
        via_redirect = fetch(f"{server.url}/r/blob.bin", tmp_path / "a.part", expected_size=None, hint=HINT)
        server.etags["blob.bin"] = digest.upper()
        via_etag = fetch(f"{server.url}/blob.bin", tmp_path / "b.part", expected_size=None, hint=HINT)
        server.etags["blob.bin"] = "0123456789abcdef0123456789abcdef01234567"  # a git blob id, not a SHA-256
        not_a_hash = fetch(f"{server.url}/blob.bin", tmp_path / "c.part", expected_size=None, hint=HINT)
    assert via_redirect.server_sha256 == digest and via_etag.server_sha256 == digest
    assert not_a_hash.server_sha256 is None
    assert [r.status for r in server.requests] == [302, 200, 200, 200]


def test_sha256_from_headers_ignores_weak_markers_and_junk() -> None:
    from email.message import Message

    m = Message()
    m["ETag"] = 'W/"' + "ab" * 32 + '"'
    assert sha256_from_headers(m) == "ab" * 32
    junk = Message()
    junk["ETag"] = '"not-a-hash"'
    assert sha256_from_headers(junk) is None and sha256_from_headers(None) is None


def test_404_and_no_network(www: Path, tmp_path: Path) -> None:
    with serve(www) as server:
        with pytest.raises(InstallError, match=r"HTTP 404 Not Found: the pinned URL may have moved.*use --from FILE"):
            fetch(f"{server.url}/gone.bin", tmp_path / "g.part", expected_size=None, hint=HINT)
    port = unused_port()
    with pytest.raises(InstallError, match=rf"cannot reach 127.0.0.1:{port} \(.*refused.*\); use --from FILE"):
        fetch(f"http://127.0.0.1:{port}/blob.bin", tmp_path / "n.part", expected_size=None, hint=HINT)
    assert not (tmp_path / "g.part").exists() and not (tmp_path / "n.part").exists()


def test_the_progress_bar_shows_each_file_and_ends_its_line() -> None:
    import io

    from assistant.commands.models import ProgressBar

    out = io.StringIO()
    bar = ProgressBar("downloading", stream=out)
    for done in (0, 400_000, 1_000_000):
        bar(done, 1_000_000)
    for done in (0, 2_000):  # the next file starts again from zero, size unknown
        bar(done, None)
    bar.end()
    text = out.getvalue()
    assert "1.00M/1.00M" in text and "100%" in text and "2.00kB" in text and text.count("\n") == 2
    bar.end()  # twice is harmless
