"""A small document (headings, paragraphs, lists, tables, images) rendered as Markdown or as one HTML page."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import Literal

_LOG = logging.getLogger(__name__)

Format = Literal["md", "html"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str = ""
    """One letter a column, ``l`` or ``r``; default: first column left, the rest right."""


@dataclass(frozen=True)
class Image:
    path: str
    """File name relative to the report."""
    alt: str


Block = Heading | Para | Bullets | Table | Image


@dataclass
class Doc:
    """Blocks in order; ``render`` turns them into the report text."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def render(self, fmt: Format) -> str:
        return _markdown(self) if fmt == "md" else _html(self)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _aligns(table: Table) -> str:
    return table.align or "l" + "r" * (len(table.header) - 1)


def _markdown(doc: Doc) -> str:
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            marks = ["---:" if a == "r" else ":---" for a in _aligns(b)]
            out.append("| " + " | ".join(_cell(h) for h in b.header) + " |")
            out.append("|" + "|".join(marks) + "|")
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        else:
            out += [f"![{b.alt}]({b.path})", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then the two inline marks the report uses: **bold** and `code`."""
    parts = html.escape(text).split("**")
    text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em}"
          "th{background:#f3f3f3}td.r{text-align:right}img{max-width:100%;margin:1em 0}")


def _html(doc: Doc) -> str:
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{html.escape(doc.title)}</title>",
           f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            aligns = _aligns(b)
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td class=\"{aligns[i] if i < len(aligns) else 'l'}\">{_inline(c)}</td>"
                                            for i, c in enumerate(r)) + "</tr>" for r in b.rows)
            out.append(f"<table><tr>{head}</tr>{rows}</table>")
        else:
            out.append(f"<img src=\"{html.escape(b.path)}\" alt=\"{html.escape(b.alt)}\">")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def parse_md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text`` as rows of cells (header first, the alignment row dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|") and line.rstrip().endswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in line.strip()[1:-1].split(" | ")]
            if not all(set(c) <= set(":-") for c in line.strip().strip("|").split("|")):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables
