"""The configuration reference, generated from the config dataclasses and their field docstrings."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from pathlib import Path
from typing import Any

import yaml


def field_docs(cls: type[Any]) -> dict[str, str]:
    """The docstring written under each field of a dataclass."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def example_yaml(cls: type[Any], instance: Any | None = None, indent: int = 0) -> str:
    """A YAML document with every key of ``cls`` at its default, each preceded by its documentation."""
    instance = instance if instance is not None else cls()
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    pad = "  " * indent
    lines: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name == "source":
            continue
        value = getattr(instance, f.name)
        doc = docs.get(f.name) or " ".join((inspect.getdoc(hints[f.name]) or "").split("\n\n")[0].split())
        for line in textwrap.wrap(doc.replace("``", "`"), 96 - len(pad)):
            lines.append(f"{pad}# {line}")
        if dataclasses.is_dataclass(hints[f.name]):
            lines.append(f"{pad}{f.name}:")
            lines.append(example_yaml(hints[f.name], value, indent + 1))
            if indent == 0:
                lines.append("")
            continue
        dumped = yaml.safe_dump({f.name: _plain(value)}, default_flow_style=True, width=10_000, sort_keys=False)
        lines.append(pad + dumped.strip().removeprefix("{").removesuffix("}"))
    return "\n".join(lines).rstrip("\n")
