"""Writing one section of a YAML config file in place: other sections and their comments are kept."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from assistant.atomic import write_text_atomic
from assistant.errors import ConfigError

_LOG = logging.getLogger(__name__)


def read_config_text(path: Path) -> tuple[str, dict[str, Any]]:
    """The config file's text and its parsed mapping ("" and {} when it does not exist yet)."""
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(old) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML, not touching it: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not touching it")
    return old, data


def replace_section(text: str, key: str, block: str, marker: str = "") -> str:
    """``text`` with the top-level section ``key`` replaced by ``block`` (appended if absent).

    Works on lines, so comments and layout elsewhere in the file survive. A ``marker`` comment
    line right above the section belongs to it and is replaced with it.
    """
    key_re = re.compile(rf"^{re.escape(key)}\s*:")
    lines = text.splitlines(keepends=True)
    found = next((i for i, line in enumerate(lines) if key_re.match(line)), None)
    if found is None:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + sep + block
    start = found - 1 if marker and found > 0 and lines[found - 1] == marker else found
    end = found + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
        end += 1
    tail = lines[end:]
    return "".join(lines[:start]) + block + ("\n" if tail else "") + "".join(tail)


def write_section(path: Path, key: str, section: dict[str, Any], *, marker: str,
                  validate: Callable[[dict[str, Any]], object]) -> bool:
    """Write the top-level ``key:`` section of ``path`` atomically; every other section is kept.

    ``marker`` is a comment line (ending in a newline) put above the section; ``validate`` checks
    the section as it will be loaded (it raises ConfigError). The file keeps its owner, group and
    mode. Returns False, and writes nothing, when the section already holds exactly this.
    """
    old, before = read_config_text(path)
    if before.get(key) == section:
        return False
    validate(section)
    block = marker + yaml.safe_dump({key: section}, sort_keys=False, default_flow_style=False)
    new = replace_section(old, key, block, marker)
    after = yaml.safe_load(new)
    rest_before = {k: v for k, v in before.items() if k != key}
    rest_after = {k: v for k, v in after.items() if k != key}
    if after.get(key) != section or rest_after != rest_before:
        raise ConfigError(f"{path}: could not replace the {key} section without touching the others; "
                          "edit it by hand")
    try:
        st = path.stat() if path.exists() else None
        # the file keeps its mode and owner: root editing the service's root:assistant 0640 file
        # must leave it readable by the service
        mode = st.st_mode & 0o7777 if st else 0o644
        owner = (st.st_uid, st.st_gid) if st and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()) else None
        write_text_atomic(path, new, mode=mode, owner=owner)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc}") from exc
    _LOG.info("%s section written to %s", key, path)
    return True
