"""The README stays true: its configuration reference is what `assistant config example` prints."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from assistant.config import AssistantConfig
from assistant.config_doc import example_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_readme_config_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- config-reference.*?-->\n```yaml\n(.*?)\n```\n<!-- end config-reference -->", readme, re.S)
    assert match, "README has no config reference block"
    assert match.group(1) == example_yaml(AssistantConfig), "regenerate it with: assistant config example"


def test_example_is_a_valid_config(tmp_path: Path) -> None:
    from assistant.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(example_yaml(AssistantConfig))
    assert isinstance(yaml.safe_load(path.read_text()), dict)
    cfg = load_config(path)
    assert cfg.llm == AssistantConfig().llm


def test_readme_gives_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", section, re.S)
    assert commands == ["bash deploy/bootstrap.sh demo", "bash deploy/bootstrap.sh test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash deploy/bootstrap.sh test" in ci
