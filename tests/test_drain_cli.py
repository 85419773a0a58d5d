"""`assistant drain-test` and `assistant report` on the command line: bad input gives our errors; the progress line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.commands.drain import LOG_EVERY, ProgressLine, format_progress
from assistant.drain.options import Progress
from drain_helpers import write_config


def _cfg(tmp_path: Path, ladder_files: dict[str, Path]) -> list[str]:
    return ["--config", str(write_config(tmp_path, ladder_files, capacity_wh=0.05))]


@pytest.mark.parametrize("argv, code, message", [
    (["drain-test", "--tier", "q9"], 2, "--tier q9: no such tier to pin (tiers: q8_0, q2_k, fixed)"),
    (["drain-test", "--tier", "shutdown"], 2, "--tier shutdown: no such tier to pin"),
    (["drain-test", "--until", "100"], 2, "--until 100 must be a state of charge within 0..100 %"),
    (["drain-test", "--time-scale", "0"], 2, "--time-scale 0 must be positive"),
    (["drain-test", "--prompts", "{tmp}/empty.txt"], 2, "empty.txt holds no questions"),
    (["drain-test", "--prompts", "{tmp}/none.txt"], 2, "prompts file {tmp}/none.txt does not exist"),
    (["drain-test", "--resume", "{tmp}/gone"], 10, "run directory {tmp}/gone does not exist"),
    (["drain-test", "--resume"], 10, "no drain run is in progress"),
    (["report", "{tmp}/gone"], 10, "run directory {tmp}/gone does not exist"),
    (["report", "{tmp}"], 10, "is not a drain run"),
    (["report"], 10, "name a run directory"),
    (["report", "--compare", "{tmp}/gone", "{tmp}"], 10, "does not exist"),
])
def test_bad_input_gives_our_errors(tmp_path: Path, ladder_files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                    argv: list[str], code: int, message: str) -> None:
    (tmp_path / "empty.txt").write_text("# nothing here\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(_cfg(tmp_path, ladder_files) + args) == code
    err = capsys.readouterr().err
    assert "assistant: error: " in err and message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err
    assert not list((tmp_path / "state").glob("drain/*/meta.json"))  # nothing was started


def test_a_finished_run_is_not_resumed_and_an_existing_one_not_overwritten(
        tmp_path: Path, ladder_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"run_id": "r1", "options": {}}))
    (run / "state.json").write_text(json.dumps({"status": "finished", "reason": "state of charge 4.9 % reached"}))
    assert main(_cfg(tmp_path, ladder_files) + ["drain-test", "--resume", str(run)]) == 10
    assert "already finished (state of charge 4.9 % reached)" in capsys.readouterr().err
    (tmp_path / "q.txt").write_text("What time is it?\n")
    assert main(_cfg(tmp_path, ladder_files) + ["drain-test", "--out", str(run), "--prompts",
                                                str(tmp_path / "q.txt")]) == 10
    assert f"{run} already holds a drain run; continue it with --resume" in capsys.readouterr().err


def _progress(turns: int) -> Progress:
    return Progress(turns=turns, words=10 * turns, soc_pct=81.25, voltage_v=7.9, tier="q8_0", elapsed_s=185.0,
                    eta_s=580.0, until_pct=5.0)


def test_progress_line() -> None:
    assert format_progress(_progress(12)) == \
        "turns 12 | words 120 | SoC  81.2 % | tier q8_0 | 3m05s run, ~9m40s left to 5 %"
    unknown = Progress(turns=1, words=0, soc_pct=None, voltage_v=None, tier=None, elapsed_s=3725.0, eta_s=None,
                       until_pct=5.0)
    assert format_progress(unknown) == "turns 1 | words 0 | SoC ? | tier - | 1h02m05s run, time left ?"

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    line = ProgressLine(tty)
    line(_progress(1))
    line(Progress(**{**_progress(2).__dict__, "tier": None}))
    line.end()
    text = tty.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and "\n" not in text[:-1]
    log = io.StringIO()
    plain = ProgressLine(log)
    for n in range(1, 2 * LOG_EVERY + 1):
        plain(_progress(n))
    plain.end()
    assert log.getvalue().splitlines() == [format_progress(_progress(LOG_EVERY)), format_progress(_progress(2 * LOG_EVERY))]
