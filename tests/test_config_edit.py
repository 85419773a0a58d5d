"""Writing one section of a config file: the rest, its comments, its owner and mode stay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.config_edit import write_section
from assistant.errors import ConfigError

TEXT = "# the service's config\npaths:\n  # where\n  state_dir: /var/lib/assistant\n\nmic:\n  device: default\n  rate: 16000\n"


def test_a_section_is_replaced_and_everything_else_kept(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(TEXT)
    path.chmod(0o640)
    if os.geteuid() == 0:  # root editing the service's root:assistant file must not take it over
        os.chown(path, 0, 65534)
    assert write_section(path, "mic", {"device": "USB", "rate": 16000}, marker="# chosen\n", validate=lambda s: None)
    text = path.read_text()
    assert text.startswith("# the service's config\npaths:\n  # where\n")
    assert "# chosen\nmic:\n  device: USB\n  rate: 16000\n" in text
    st = path.stat()
    assert st.st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, 65534)
    # the same section again: nothing is written
    mtime = path.stat().st_mtime_ns
    assert not write_section(path, "mic", {"device": "USB", "rate": 16000}, marker="# chosen\n",
                             validate=lambda s: None)
    assert path.stat().st_mtime_ns == mtime and path.read_text() == text
    # a new section is appended
    assert write_section(path, "speaker", {"device": "USB"}, marker="# chosen\n", validate=lambda s: None)
    assert path.read_text().endswith("\n# chosen\nspeaker:\n  device: USB\n")


def test_an_invalid_section_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(TEXT)

    def refuse(section: dict[str, object]) -> None:
        raise ConfigError("mic.device: bad")
    with pytest.raises(ConfigError, match="mic.device: bad"):
        write_section(path, "mic", {"device": 5}, marker="", validate=refuse)
    assert path.read_text() == TEXT
