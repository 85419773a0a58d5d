"""Security review, tested: no listening socket, no shell, recognised or generated text never reaches a program or
a path, a fixed power-off command, a hardened service user, and files that are not world-writable."""

from __future__ import annotations

import ast
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from assistant.config import AssistantConfig, PathsConfig, load_config
from assistant.device.device_config import ShutdownConfig
from assistant.device.shutdown import Shutdowner
from assistant.errors import ConfigError
from assistant.models import embedded
from assistant.turnlog import read_turns

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "assistant"
UNIT = ROOT / "deploy" / "assistant.service"

# -- the appliance as a process ------------------------------------------------------------------


@dataclass
class ProcSockets:
    """The sockets one process holds, from /proc: (table, local address, state or flags, path)."""

    inet: list[tuple[str, str, str]] = field(default_factory=list)
    unix: list[tuple[str, str, str]] = field(default_factory=list)


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def sockets_of(pid: int) -> ProcSockets:
    inodes = socket_inodes(pid)
    found = ProcSockets()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                found.inet.append((table, cols[1], cols[3]))
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[6] in inodes:
            found.unix.append((cols[3], cols[5], cols[7] if len(cols) > 7 else ""))  # flags, state, path
    return found


@dataclass
class ApplianceRun:
    """What one `assistant run --sim` under a given umask did."""

    umask: int
    root: Path
    home: Path
    state: Path
    sockets_ready: ProcSockets
    sockets_turn: ProcSockets
    exit_code: int
    stderr: str


def run_appliance(root: Path, umask: int) -> ApplianceRun:
    home, state = root / "home", root / "state"
    home.mkdir(parents=True)
    config = root / "assistant.yaml"
    config.write_text(f"paths:\n  state_dir: {state}\n  models_dir: {root / 'models'}\n"
                      f"llm:\n  model: {embedded.smollm2_gguf()}\n  max_tokens: 12\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "ASSISTANT_CONFIG")}
    env.update(HOME=str(home), GPIOZERO_PIN_FACTORY="mock", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "--config", str(config), "run", "--sim",
                             "--sim-press-every", "2"], cwd=root, env=env, umask=umask, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "appliance ready" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(120), "".join(lines[-20:])
        at_ready = sockets_of(proc.pid)
        log = state / "turns.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(r.words for r in read_turns(log).entries):
            assert proc.poll() is None, "".join(lines[-20:])
            time.sleep(0.2)
        assert any(r.words for r in read_turns(log).entries), "".join(lines[-20:])
        after_turn = sockets_of(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        reader.join(10)
    return ApplianceRun(umask, root, home, state, at_ready, after_turn, code, "".join(lines))


@pytest.fixture(scope="module", params=[0o022, 0o002], ids=["umask022", "umask002"])
def appliance_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ApplianceRun:
    return run_appliance(tmp_path_factory.mktemp(f"run{request.param:03o}"), request.param)


def test_the_appliance_listens_on_no_socket(appliance_run: ApplianceRun) -> None:
    for found in (appliance_run.sockets_ready, appliance_run.sockets_turn):
        assert not [s for s in found.inet if s[0].startswith("tcp") and s[2] == "0A"], found.inet  # LISTEN
        assert not [s for s in found.inet if s[0].startswith("udp")], found.inet  # a bound UDP socket receives
        assert not [s for s in found.unix if int(s[0], 16) & 0x10000], found.unix  # __SO_ACCEPTCON: listening
        assert not [s for s in found.unix if s[2]], found.unix  # bound to a path: someone could send to it
    assert appliance_run.exit_code == 0, appliance_run.stderr[-2000:]


def test_the_simulated_appliance_opens_no_network_connection(appliance_run: ApplianceRun) -> None:
    assert appliance_run.sockets_ready.inet == [] and appliance_run.sockets_turn.inet == []


def test_files_it_writes_are_not_world_writable(appliance_run: ApplianceRun) -> None:
    written = [p for p in appliance_run.root.rglob("*") if p.name != "assistant.yaml"]
    assert any(p.name == "turns.jsonl" for p in written) and any(p.suffix == ".wav" for p in written)
    loose = [f"{p} {stat.filemode(p.lstat().st_mode)}" for p in written if p.lstat().st_mode & stat.S_IWOTH]
    assert loose == []


def test_nothing_is_written_outside_the_state_directory(appliance_run: ApplianceRun) -> None:
    assert [str(p.relative_to(appliance_run.home)) for p in appliance_run.home.rglob("*")] == []


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_library_writers_respect_the_umask(tmp_path: Path, umask: int) -> None:
    """The turn log, answer WAVs, the model manifest and its lock, written in a process with that umask."""
    script = (
        "import sys; from pathlib import Path\n"
        "from assistant.turnlog import TurnLog\n"
        "from assistant.speech.wav import write_wav\n"
        "from assistant.messages import AudioClip\n"
        "from assistant.models.manifest import write_manifest, ensure_models_dir, install_lock\n"
        "from assistant.config import ensure_dir\n"
        "root = Path(sys.argv[1])\n"
        "state = ensure_dir(root / 'state' / 'deeper')\n"
        "TurnLog(state / 'turns.jsonl').append({'schema': 1, 'turn_id': 'x'})\n"
        "write_wav(state / 'answer.wav', AudioClip(b'\\0\\0' * 160, 16000, 1))\n"
        "models = ensure_models_dir(root / 'models')\n"
        "write_manifest(models, {})\n"
        "with install_lock(models):\n"
        "    pass\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], umask=umask, capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    written = list(tmp_path.rglob("*"))
    assert len([p for p in written if p.is_file()]) >= 3
    assert [f"{p} {stat.filemode(p.stat().st_mode)}" for p in written if p.stat().st_mode & stat.S_IWOTH] == []


# -- no shell, no dynamic code, one program ---------------------------------------------------------


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text(encoding="utf-8"), str(path))


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


FORBIDDEN_CALLS = {"os.system", "os.popen", "os.execv", "os.execve", "os.execvp", "os.execl", "os.execlp",
                   "os.spawnv", "os.spawnl", "os.posix_spawn", "eval", "exec", "compile", "pickle.load",
                   "pickle.loads", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "marshal.loads",
                   "subprocess.getoutput", "subprocess.getstatusoutput"}


def test_no_shell_and_no_code_from_data() -> None:
    found = []
    for name, tree in modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = dotted(node.func)
            if func in FORBIDDEN_CALLS:
                found.append(f"{name}: {func}()")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{name}: {func}(shell=...)")
    assert found == []


def imports_of(tree: ast.Module, name: str) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(name.split(".")[: -node.level] + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def runtime_modules() -> dict[str, ast.Module]:
    """Every module of the package that `assistant run` can reach (imports inside functions included)."""
    trees = dict(modules())
    todo, seen = ["assistant.cli", "assistant.commands.run"], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in trees:
            continue
        seen.add(name)
        if name == "assistant.cli":  # the CLI lists every command; only `run` is the appliance
            todo += ["assistant.config", "assistant.errors"]
            continue
        todo += [m for m in imports_of(trees[name], name) if m.startswith("assistant")]
    return {n: trees[n] for n in seen}


RUNNERS = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
           "subprocess.check_output", "os.execv", "os.execve", "os.execvp", "os.spawnv", "os.posix_spawn",
           "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell", "pty.spawn"}


def test_the_appliance_runs_no_program_but_the_power_off_command() -> None:
    """Every reference to a program runner in what `assistant run` can reach is the Shutdowner's default."""
    runtime = runtime_modules()
    assert {"assistant.device.appliance", "assistant.session", "assistant.speech.pipeline"} <= set(runtime)
    uses = sorted({f"{name}: {dotted(node)}" for name, tree in runtime.items() for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and dotted(node) in RUNNERS})
    assert uses == ["assistant.device.shutdown: subprocess.run"]
    shutdown = ast.parse((PACKAGE / "device" / "shutdown.py").read_text())
    calls = [ast.unparse(n) for n in ast.walk(shutdown) if isinstance(n, ast.Call) and dotted(n.func) == "self._run"]
    assert len(calls) == 1 and calls[0].startswith("self._run(list(self.argv),")  # the fixed argv, nothing else


SPOKEN = {"transcript", "reply", "question", "answer", "sentence", "piece", "hypstr", "partial", "words", "item"}
"""Names that hold what a person said or what the model wrote."""
PATH_SINKS = {"open", "Path", "os.open", "os.remove", "os.unlink", "os.rename", "os.replace", "os.makedirs",
              "os.mkdir", "shutil.rmtree", "shutil.move", "shutil.copyfile", "write_wav", "read_wav",
              "tempfile.mkstemp", "subprocess.run", "subprocess.Popen"}


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def test_spoken_or_generated_text_never_names_a_file_or_a_program() -> None:
    flows = []
    for name, tree in runtime_modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = dotted(node.func)
                target = node.args[0] if node.args else None
                if (func in PATH_SINKS or func.endswith((".open", ".mkdir", ".unlink", ".write_text"))) and target:
                    hit = names_in(target) & SPOKEN
                    if hit and func.endswith(".write_text") is False:
                        flows.append(f"{name}:{node.lineno} {func}({', '.join(sorted(hit))})")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # path / something
                hit = names_in(node.right) & SPOKEN
                if hit and names_in(node.left) & {"path", "dir", "state_dir", "models_dir", "root", "out"}:
                    flows.append(f"{name}:{node.lineno} / {', '.join(sorted(hit))}")
    assert flows == []


def test_a_turn_whose_text_looks_like_paths_and_commands_writes_only_the_log(tmp_path: Path) -> None:
    """A real session (real Piper voice) answering hostile text: nothing but the turn log appears."""

    from assistant.session import Session
    from assistant.speech.llm import Generation
    from assistant.speech.speaker import NullSpeaker

    evil = "../../../../tmp/pwned-by-speech; rm -rf ~ $(touch /tmp/pwned-by-speech) `id` | tee ~/.bashrc"

    class Parrot:
        model_name = "parrot"

        def __init__(self) -> None:
            self.last = Generation()
            self.asked = ""

        def respond(self, question: str, cancel: threading.Event | None = None) -> Iterator[str]:
            self.asked = question
            self.last = Generation(text=question, tokens=3)
            yield question

        def reset(self) -> None:
            pass

        def close(self) -> None:
            pass

    cfg = AssistantConfig(paths=PathsConfig(state_dir=tmp_path / "state", models_dir=tmp_path / "models"))
    before = set(Path("/tmp").iterdir())
    with Session(cfg, with_asr=False, start_meter=False) as session:
        session.select_tier()
        assert session.responder is not None
        session.responder.close()
        session.responder = parrot = Parrot()
        record = session.run_turn(NullSpeaker(), text=evil)
    assert parrot.asked.startswith(evil.strip()) and record.reply == parrot.asked  # as a question: punctuated
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["state", "turns.jsonl"]
    assert evil not in (tmp_path / "state" / "turns.jsonl").read_text()  # the log keeps counts, not words
    assert not [p for p in set(Path("/tmp").iterdir()) - before if "pwned" in p.name]


# -- the power-off command ----------------------------------------------------------------------------


def test_the_power_off_command_is_a_fixed_list_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("shutdown:\n  command: systemctl poweroff\n")
    with pytest.raises(ConfigError, match="shutdown.command"):
        load_config(path, search=False)
    ran: list[tuple[list[str], dict[str, object]]] = []

    def record(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        ran.append((argv, kw))
        return subprocess.CompletedProcess(argv, 0, "", "")

    cfg = ShutdownConfig(command=["systemctl", "poweroff"])
    shutdowner = Shutdowner(cfg, run=record, sync=lambda: None)
    assert shutdowner.execute("battery empty; rm -rf / $(reboot) `halt`") is True
    assert shutdowner.execute("a reason\nwith lines") is True
    assert [argv for argv, _ in ran] == [["systemctl", "poweroff"]] * 2
    assert all(kw.get("shell") in (None, False) for _, kw in ran)
    tree = ast.parse((PACKAGE / "device" / "shutdown.py").read_text())
    writes = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
              and any(dotted(t) == "self.argv" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))]
    assert len(writes) == 1 and writes[0].value is not None
    assert "cfg.command" in ast.unparse(writes[0].value)  # set once, from the config


# -- the service unit -----------------------------------------------------------------------------------


def unit_values() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_service_runs_as_its_own_unprivileged_user_with_hardening() -> None:
    v = unit_values()
    assert v["User"] == ["assistant"] and v["Group"] == ["assistant"]
    assert "DynamicUser" not in v and "AmbientCapabilities" not in v
    assert v["CapabilityBoundingSet"] == [""]  # no capability at all
    required = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes", "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "PrivateMounts": "yes", "RemoveIPC": "yes",
        "ProtectProc": "invisible", "SystemCallArchitectures": "native", "DevicePolicy": "closed",
        "UMask": "0027", "IPAddressDeny": "any",
    }
    assert {k: v.get(k) for k in required} == {k: [x] for k, x in required.items()}
    assert set(v["IPAddressAllow"]) <= {"localhost", "127.0.0.1", "::1"}
    assert set(" ".join(v["RestrictAddressFamilies"]).split()) <= {"AF_UNIX", "AF_INET"}  # no raw, netlink, v6
    assert set(v["DeviceAllow"]) == {"char-i2c rw", "char-gpiochip rw", "char-alsa rw"}
    start = v["ExecStart"][0]
    assert not start.startswith(("+", "!", "@")) and " sh -c" not in start and "sudo" not in start
    assert "ReadWritePaths" not in v  # writes go to StateDirectory=/RuntimeDirectory= only
