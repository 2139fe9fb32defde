"""Tests of autograder.sandbox (and autograder.worker inside it) with real bubblewrap sandboxes.

Read-only probes share one started sandbox (module fixture ``shared``); every test that kills its
sandbox or needs other limits starts a fresh one. What a probe finds inside is printed as JSON by
the cell and judged here against facts gathered independently on the host (its files, its
environment, a socket it listens on, /proc).
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import py_compile
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autograder import sandbox as sandbox_module
from autograder.sandbox import (
    Limits,
    Sandbox,
    SandboxFailure,
    SandboxUnavailable,
    check_available,
)
from coursework import wire
from conftest import require_sandbox



@pytest.fixture(autouse=True, scope="module")
def _sandbox_here():
    """Every test here needs the sandbox: without it they fail, saying how to install it."""
    require_sandbox()


REPO = Path(__file__).resolve().parents[1]
HIDDEN = ("dgm.divergences",)
#: variables a grading machine might carry, put into the grader's environment before the start
LEAKY_ENV = {"NBGRADER_COURSE_ID": "dgm-secret", "GRADER_TOKEN": "s3cret-token", "JPY_SESSION_NAME": "grading",
             "CI": "true", "MY_AUTOGRADING_FLAG": "1",
             "DGM_HOST_SENTINEL": "xyzzy-host-only"}
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="per-slot uids are only assigned when the grader runs as root")
#: How long after its deadline (or its close()) a sandbox's processes may still be seen. The kill
#: itself takes a fraction of a second, but on a loaded machine (other jobs sharing two cores)
#: sending it, reaping the processes and waking this test can take many seconds. So the bounds
#: below prove "killed rather than left running", not "killed fast": whatever they bound runs
#: for ever (or for a fail-safe of minutes) unless it is killed.
KILL_MARGIN_S = 30.0


def deadline(seconds: float = 60.0) -> float:
    return time.monotonic() + seconds


def cell(sb: Sandbox, code: str, seconds: float = 60.0) -> dict:
    return sb.request("run_cell", deadline(seconds), code=code)


def probe(sb: Sandbox, code: str, seconds: float = 60.0):
    """Run ``code`` (which sets ``result``) and return ``result`` as the cell printed it in JSON."""
    reply = cell(sb, code + "\nimport json as _json\nprint('@@' + _json.dumps(result))", seconds)
    assert reply["ok"], reply
    line = [ln for ln in reply["stdout"].splitlines() if ln.startswith("@@")][-1]
    return json.loads(line[2:])


def processes_of(uid: int) -> list[int]:
    """Host pids whose real, effective, saved or filesystem uid is ``uid`` (read from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if str(uid) in line.split()[1:]:
                            pids.append(int(entry))
                        break
        except OSError:
            continue
    return pids


def wait_until_gone(uid: int, seconds: float = 3.0) -> list[int]:
    end = time.monotonic() + seconds
    while True:
        left = processes_of(uid)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.02)


def close_and_tidy(sb: Sandbox) -> None:
    """Close ``sb``; then remove its scratch folder if close() left it behind (see
    test_close_returns_only_when_the_sandbox_is_gone), so the suite leaves nothing in /tmp."""
    scratch = sb.scratch
    sb.close()
    if scratch is not None and scratch.exists():
        time.sleep(0.5)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def shared():
    with pytest.MonkeyPatch.context() as mp:
        for k, v in LEAKY_ENV.items():
            mp.setenv(k, v)
        sb = Sandbox(Limits(), slot=0, hidden_modules=HIDDEN)
        try:
            sb.start()
        except BaseException:
            close_and_tidy(sb)
            raise
    yield sb
    close_and_tidy(sb)


@pytest.fixture(scope="module")
def shared_uid(shared) -> int:
    return probe(shared, "import os\nresult = os.getuid()")


@pytest.fixture
def fresh():
    """A factory of fresh sandboxes, all closed at the end of the test."""

    def make(limits: Limits | None = None, slot: int = 3, hidden=()):
        sb = Sandbox(limits or Limits(), slot=slot, hidden_modules=hidden)
        made.append(sb)
        sb.start()
        scratches.append(sb.scratch)
        return sb

    made, scratches = [], []
    yield make
    for sb in made:
        close_and_tidy(sb)
    for scratch in scratches:          # also those a test closed itself
        if scratch.exists():
            time.sleep(0.5)
            shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# isolation: network, user, files, environment
# --------------------------------------------------------------------------------------------


def test_network_is_unreachable(shared):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        # the listener works for the host: so a sandbox that shared our network would get through
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            conn, _ = listener.accept()
            conn.close()
        result = probe(shared, f"""
import socket
result = {{}}
for host, port in (("1.1.1.1", 80), ("127.0.0.1", {port}), ("8.8.8.8", 53)):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        result[host] = "connected"
    except OSError as e:
        result[host] = type(e).__name__ + ": " + str(e)
    finally:
        s.close()
try:
    socket.getaddrinfo("pypi.org", 443)
    result["dns"] = "resolved"
except OSError as e:
    result["dns"] = type(e).__name__
result["interfaces"] = [name for _, name in socket.if_nameindex()]
""", seconds=30)
        for host in ("1.1.1.1", "127.0.0.1", "8.8.8.8"):
            assert result[host] != "connected", result
        assert result["dns"] != "resolved"
        assert result["interfaces"] == ["lo"]
        listener.settimeout(0.3)
        with pytest.raises(socket.timeout):
            listener.accept()               # nothing from the sandbox reached us
    finally:
        listener.close()


def _status_fields(text: str) -> dict:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def test_runs_unprivileged_without_capabilities(shared):
    status = _status_fields(probe(shared, "result = open('/proc/self/status').read()"))
    uids, gids = status["Uid"], status["Gid"]
    assert len(set(uids)) == 1 and uids[0] != "0"
    assert len(set(gids)) == 1 and gids[0] != "0"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap][0], 16) == 0, (cap, status[cap])
    assert status["NoNewPrivs"] == ["1"]
    assert status.get("Groups", []) == []
    info = probe(shared, "import os\nresult = [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()]")
    assert info[0] == info[1] == int(uids[0]) and info[3] == []
    # a privileged operation fails
    reply = cell(shared, "import os\nos.setuid(0)")
    assert reply["ok"] is False and reply["ename"] == "PermissionError"


@as_root
def test_slots_have_their_own_uids(shared, shared_uid, fresh):
    other = fresh(slot=1)
    uid1 = probe(other, "import os\nresult = os.getuid()")
    assert uid1 != shared_uid
    assert 0 not in (uid1, shared_uid)
    # each sandbox's home belongs to its own uid on the host
    assert os.stat(other.scratch).st_uid == uid1
    assert os.stat(shared.scratch).st_uid == shared_uid


def _host_only(paths):
    return [str(p) for p in paths if os.path.lexists(p)]


def test_repository_and_root_home_are_not_visible(shared):
    secret = _host_only([REPO / "solutions", REPO / "autograder", REPO / ".git", REPO / "tests", REPO / "exercises",
                         Path("/root/.bashrc"), Path("/root/.gitconfig"), Path("/root/.ssh"), Path("/root/.cache"),
                         Path("/etc/shadow"), *Path("/home").glob("*")])   # the sandbox's own home is /home/student
    assert len(secret) >= 4          # the probe below means something on this machine
    # what the Python installation itself needs under the repository and /root: first path parts
    needed_repo, needed_root = set(), set()
    for prefix in {sandbox_module.sandbox_path(os.path.realpath(sys.prefix)), os.path.realpath(sys.base_prefix)}:
        for base, needed in ((str(REPO), needed_repo), ("/root", needed_root)):
            if prefix.startswith(base + os.sep):
                needed.add(Path(prefix).relative_to(base).parts[0])
    result = probe(shared, f"""
import os
result = {{"exists": [p for p in {secret!r} if os.path.lexists(p)],
           "repo": sorted(os.listdir({str(REPO)!r})) if os.path.isdir({str(REPO)!r}) else [],
           "root": sorted(os.listdir("/root")) if os.path.isdir("/root") else []}}
""")
    assert result["exists"] == []
    assert set(result["repo"]) <= needed_repo, result["repo"]
    assert set(result["root"]) <= needed_root, result["root"]


def test_dgm_imports_but_the_hidden_module_does_not(shared):
    source = REPO / "dgm" / "divergences.py"
    assert "def gaussian_kl" in source.read_text()       # there is something to hide
    ok = cell(shared, "import dgm, dgm.distributions, coursework.wire\nprint(dgm.distributions.gaussian_log_prob)")
    assert ok["ok"] and "gaussian_log_prob" in ok["stdout"]
    for code in ("import dgm.divergences", "from dgm.divergences import gaussian_kl", "from dgm import divergences"):
        reply = cell(shared, code)
        assert reply["ok"] is False
        assert reply["ename"] in ("ModuleNotFoundError", "ImportError"), reply
    assert cell(shared, "import dgm.divergences")["ename"] == "ModuleNotFoundError"
    text = probe(shared, f"""
try:
    result = open({str(source)!r}).read()
except OSError as e:
    result = type(e).__name__
""")
    assert "gaussian_kl" not in text


def test_the_compiled_hidden_module_is_not_readable(fresh, tmp_path, monkeypatch):
    # A copy of the package with the bytecode cache a normal `import dgm.divergences` leaves behind.
    real = sandbox_module.package_dir("dgm")
    package = tmp_path / "dgm"
    shutil.copytree(real, package, ignore=shutil.ignore_patterns("__pycache__"))
    pyc = Path(importlib.util.cache_from_source(str(package / "divergences.py")))
    py_compile.compile(str(package / "divergences.py"), cfile=str(pyc), doraise=True)
    host_paths = sandbox_module._host_python_paths
    real_dir = sandbox_module.package_dir
    monkeypatch.setattr(sandbox_module, "package_dir", lambda name: str(package) if name == "dgm" else real_dir(name))
    # the worker itself still imports the real package
    monkeypatch.setattr(sandbox_module, "_host_python_paths", lambda: [*host_paths(), real])
    sb = fresh(hidden=HIDDEN)
    inside = f"{sandbox_module.COURSE_DIR}/dgm"   # where the sandbox sees the package
    inside_pyc = str(pyc).replace(str(package), inside)
    result = probe(sb, f"""
import marshal
names = {{}}
for path in ({str(package / 'divergences.py')!r}, {str(pyc)!r}, {inside + '/divergences.py'!r}, {inside_pyc!r}):
    try:
        data = open(path, 'rb').read()
        names[path] = list(marshal.loads(data[16:]).co_names) if path.endswith('.pyc') else data.decode()
    except Exception as e:
        names[path] = type(e).__name__
result = names
""")
    for path in (str(package / "divergences.py"), str(pyc), inside + "/divergences.py", inside_pyc):
        assert "gaussian_kl" not in result[path], path   # the source is masked, and so is its bytecode


def test_only_the_home_is_writable(shared):
    package = str(REPO / "dgm")
    targets = ["/", "/usr", "/etc", "/tmp", "/home", "/opt/kernel", "/proc", "/dev", "/dev/shm", package, str(REPO), "/root"]
    result = probe(shared, f"""
import os
result = {{"cwd": os.getcwd(), "home": os.environ.get("HOME"), "tmpdir": os.environ.get("TMPDIR"), "writes": {{}}}}
for folder in {targets!r} + [os.getcwd(), os.path.expanduser("~")]:
    path = os.path.join(folder, "probe-write.txt")
    try:
        with open(path, "w") as f:
            f.write("x")
        result["writes"][folder] = "ok"
    except OSError as e:
        result["writes"][folder] = type(e).__name__
try:
    os.mkdir({package!r} + "/newdir")
    result["mkdir"] = "ok"
except OSError as e:
    result["mkdir"] = type(e).__name__
""")
    home = result["home"]
    assert result["cwd"] == home and result["tmpdir"] == home
    writes = result["writes"]
    assert writes[home] == "ok"
    for folder in targets:
        assert writes[folder] != "ok", (folder, writes[folder])
    assert result["mkdir"] != "ok"
    # the home is the scratch folder on the host, and nothing landed in the package
    assert (shared.scratch / "probe-write.txt").read_text() == "x"
    assert not (REPO / "dgm" / "probe-write.txt").exists()


def test_environment_says_nothing_about_grading(shared):
    env = probe(shared, "import os\nresult = dict(os.environ)")
    for name, value in env.items():
        upper = name.upper()
        assert not any(word in upper for word in ("GRAD", "NBGRADER", "JPY", "CI")), name
        for secret in LEAKY_ENV.values():
            if len(secret) > 4:
                assert secret not in value, name
    # nothing of the grader's own environment came in, whatever its name
    assert "DGM_HOST_SENTINEL" not in env
    assert env["HOME"] == probe(shared, "import os\nresult = os.getcwd()")
    assert env["HOME"] != os.environ.get("HOME")


# --------------------------------------------------------------------------------------------
# limits
# --------------------------------------------------------------------------------------------


def test_a_huge_allocation_raises_memory_error(shared):
    reply = cell(shared, "big = bytearray(10 * 10**9)")
    assert reply["ok"] is False and reply["ename"] == "MemoryError"
    assert probe(shared, "result = 2 + 2") == 4          # and the kernel lives on


@pytest.fixture(scope="module")
def limited():
    sb = Sandbox(Limits(file_bytes=2**20, output_chars=1000), slot=5)
    try:
        sb.start()
        yield sb
    finally:
        close_and_tidy(sb)


def test_a_file_larger_than_the_cap_cannot_be_written(limited):
    cap = 2**20
    result = probe(limited, f"""
import os
fd = os.open("big.bin", os.O_WRONLY | os.O_CREAT)
written, error = 0, None
try:
    for _ in range(30):                      # 3 MB attempted, against a 1 MiB cap
        written += os.write(fd, b"y" * 100_000)
except OSError as e:
    error = e.errno
os.close(fd)
try:
    with open("big2.bin", "wb") as f:
        f.write(b"z" * ({cap} + 10))
    error2 = None
except OSError as e:
    error2 = e.errno
result = [written, error, error2, os.path.getsize("big.bin"), os.path.getsize("big2.bin")]
""")
    written, error, error2, size1, size2 = result
    assert error == errno.EFBIG and error2 == errno.EFBIG
    assert written <= cap and size1 <= cap and size2 <= cap
    assert (limited.scratch / "big.bin").stat().st_size <= cap
    assert (limited.scratch / "big2.bin").stat().st_size <= cap
    # below the cap, writing works
    assert probe(limited, "open('small.bin', 'wb').write(b'a' * 1000)\nimport os\nresult = os.path.getsize('small.bin')") == 1000


def test_output_is_capped_and_the_rest_counted(limited):
    reply = cell(limited, "import sys\nprint('x' * 1_000_000)\nprint('y' * 5000, file=sys.stderr)")
    assert reply["ok"]
    assert reply["stdout"] == "x" * 1000
    assert reply["stderr"] == "y" * 1000
    # 1_000_000 x's and a newline, 5000 y's and a newline, less what was kept
    assert reply["dropped"] == (1_000_001 - 1000) + (5001 - 1000)
    small = cell(limited, "print('hello')")
    assert small["stdout"] == "hello\n" and small["dropped"] == 0


def test_a_fork_bomb_stops_at_the_process_cap_and_close_cleans_up(fresh):
    cap = 12
    sb = fresh(Limits(processes=cap), slot=2)
    uid = probe(sb, "import os\nresult = os.getuid()")
    result = probe(sb, f"""
import os, time
children, error = 0, None
for _ in range({4 * cap}):                 # fail-safe: never more than 4x the cap
    try:
        pid = os.fork()
    except OSError as e:
        error = e.errno
        break
    if pid == 0:
        time.sleep(300)                    # fail-safe: far past KILL_MARGIN_S, so only a kill ends it sooner
        os._exit(0)
    children += 1
result = [children, error]
""", seconds=30)
    children, error = result
    assert error == errno.EAGAIN
    assert 1 <= children < cap                # the kernel itself is one of the cap's processes
    assert len(processes_of(uid)) <= cap
    # the host is unaffected
    assert subprocess.run(["true"], check=False).returncode == 0
    scratch = sb.scratch
    assert scratch.is_dir()
    time.sleep(0.3)        # let IPython's history thread finish its write (see the close() race test below)
    sb.close()
    assert not scratch.exists()
    # the sleeping children (300 s) must be gone with the sandbox, not left to run
    assert wait_until_gone(uid, KILL_MARGIN_S) == []


WRITERS = """
import os, time
for w in range(8):
    if os.fork() == 0:
        stop, i = time.monotonic() + 20, 0          # fail-safe: the writers end by themselves
        while time.monotonic() < stop:
            try:
                open(f"w{w}_{i % 1000}", "w").close()
            except OSError:
                pass
            i += 1
        os._exit(0)
"""


def test_close_returns_only_when_the_sandbox_is_gone(fresh):
    outcomes = []
    for _ in range(2):
        sb = fresh(slot=6)
        uid = probe(sb, "import os\nresult = os.getuid()")
        assert cell(sb, WRITERS)["ok"]
        time.sleep(0.2)
        scratch = sb.scratch
        sb.close()
        outcomes.append({"processes left": len(processes_of(uid)), "scratch left": scratch.exists()})
        # tidy up after the race, whatever happened
        assert wait_until_gone(uid, KILL_MARGIN_S) == []
        shutil.rmtree(scratch, ignore_errors=True)
    assert outcomes == [{"processes left": 0, "scratch left": False}] * 2


def test_a_cell_that_ignores_sigint_is_killed_at_its_deadline(fresh):
    sb = fresh(slot=4)
    uid = probe(sb, "import os\nresult = os.getuid()")
    start = time.monotonic()
    with pytest.raises(SandboxFailure) as info:
        sb.request("run_cell", start + 3.0,
                   code="import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
    elapsed = time.monotonic() - start
    assert info.value.kind == "timeout"
    # not before its deadline; after it, only as late as a loaded machine makes the kill (the cell
    # spins for ever: a sandbox left running would never answer)
    assert 2.9 <= elapsed < 3.0 + KILL_MARGIN_S
    assert not sb.alive
    assert wait_until_gone(uid, KILL_MARGIN_S) == []
    with pytest.raises(SandboxFailure) as again:
        sb.request("run_cell", deadline(5), code="1")
    assert again.value.kind == "died"


def test_exiting_the_kernel_is_reported_as_died(fresh):
    sb = fresh(slot=4)
    with pytest.raises(SandboxFailure) as info:
        cell(sb, "import os\nos._exit(3)", seconds=20)
    assert info.value.kind == "died"
    assert "3" in str(info.value)
    assert not sb.alive


def test_writing_past_the_scratch_cap_kills_the_kernel(fresh):
    sb = fresh(Limits(scratch_bytes=2 * 2**20), slot=4)
    scratch = sb.scratch
    start = time.monotonic()
    cell_deadline = 3 * KILL_MARGIN_S
    with pytest.raises(SandboxFailure) as info:
        cell(sb, "with open('fill.bin', 'wb') as f:\n    f.write(b'q' * 8_000_000)\nimport time\n"
                 f"time.sleep({2 * cell_deadline:g})", seconds=cell_deadline)
    # killed for the write, well before the cell's deadline (the kind says the same: "died", not
    # "timeout"); how soon after the write depends on the machine's load, so no tighter bound
    assert time.monotonic() - start < cell_deadline
    assert info.value.kind == "died"
    assert "folder" in str(info.value)
    assert not sb.alive
    sb.close()
    assert not scratch.exists()


def test_a_reply_longer_than_the_cap_becomes_an_error_reply(fresh):
    sb = fresh(Limits(reply_bytes=2**20), slot=4)
    assert cell(sb, "import torch\ndef big():\n    return torch.zeros(300_000, dtype=torch.float64)\n"
                    "def small():\n    return torch.zeros(10, dtype=torch.float64)")["ok"]
    reply = sb.request("call", deadline(30), name="small", args=[], grad=None)
    assert wire.decode(reply["value"]).tolist() == [0.0] * 10
    reply = sb.request("call", deadline(30), name="big", args=[], grad=None)   # ~3.2 MB of base64
    assert reply["ok"] is False and "larger than the grader accepts" in reply["error"]
    assert sb.alive  # the worker said so itself: nothing broke


def _write_everywhere(line: str, then_sleep: float = 5.0, child: bool = False, times: int = 1) -> str:
    """A cell that writes the bytes expression ``line`` ``times`` times to every descriptor it can
    (the reply pipe among them), from the kernel itself or from a child process it starts, then sleeps."""
    body = ("import os\n"
            f"line = {line}\n"
            "for fd in range(3, 256):\n"
            "    try:\n"
            f"        for _ in range({times}):\n"
            "            os.write(fd, line)\n"
            "    except OSError:\n"
            "        pass\n")
    if child:  # a forked child inherits every descriptor
        body = f"import os\nif os.fork() == 0:\n    exec({body!r})\n    os._exit(0)\n"
    return body + f"import time\ntime.sleep({then_sleep})\n"


def test_a_reply_nobody_asked_for_kills_the_sandbox(fresh):
    sb = fresh(slot=4)
    with pytest.raises(SandboxFailure) as info:
        cell(sb, _write_everywhere(repr(b'{"id": 12345, "ok": true, "kind": "missing"}\n')))
    assert info.value.kind == "protocol" and "nobody asked for" in str(info.value)
    assert not sb.alive


def test_a_line_past_the_cap_kills_the_sandbox(fresh):
    sb = fresh(Limits(reply_bytes=2**20), slot=4)
    with pytest.raises(SandboxFailure) as info:
        cell(sb, _write_everywhere("b'[' * 3_000_000"))
    assert info.value.kind == "protocol" and "longer than" in str(info.value)
    assert not sb.alive


_FLOOD_SCRIPT = """
import resource, sys, time
from autograder.sandbox import Limits, Sandbox, SandboxFailure
sb = Sandbox(Limits(), slot=5)
sb.start()
try:
    sb.request("run_cell", time.monotonic() + 60, code=sys.argv[1])
    sb.request("run_cell", time.monotonic() + 60, code="import time; time.sleep(3)")
    outcome = "alive"
except SandboxFailure as failure:
    outcome = failure.kind
sb.close()
print(outcome, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_flood_of_huge_lines_does_not_grow_the_graders_memory(tmp_path):
    """A student's child process writes five 48 MiB lines to every descriptor it can (the reply
    pipe included) while the grader waits: the grader holds at most one capped line, kills the
    sandbox for breaking the protocol, and its peak memory stays within a few MiB of a quiet run's
    (before the cap, such a flood took the grader from 0.4 to 3.85 GiB)."""
    script = tmp_path / "flood.py"
    script.write_text(_FLOOD_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    flood = _write_everywhere("b'[' + b'1,' * (24 * 2**20) + b'1]\\n'", then_sleep=0.1, child=True, times=5)
    runs = {}
    for mode, code in (("quiet", "x = 1"), ("flood", flood + "import time\ntime.sleep(10)\n")):
        done = subprocess.run([sys.executable, str(script), code], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outcome, peak_kib = done.stdout.split()[-2:]
        runs[mode] = (outcome, int(peak_kib))
    extra_mib = (runs["flood"][1] - runs["quiet"][1]) / 1024
    print(f"grader peak memory: quiet {runs['quiet'][1] / 1024:.0f} MiB, flood {runs['flood'][1] / 1024:.0f} MiB "
          f"(+{extra_mib:.1f} MiB)")
    assert runs["quiet"][0] == "alive"
    assert runs["flood"][0] == "protocol", runs
    assert extra_mib < 64, runs


# --------------------------------------------------------------------------------------------
# the protocol: cells, values, calls, gradients
# --------------------------------------------------------------------------------------------


def test_a_failing_cell_reports_its_error(shared):
    reply = cell(shared, "print('before')\nraise ValueError('boom 42')")
    assert reply["ok"] is False
    assert reply["ename"] == "ValueError" and reply["evalue"] == "boom 42"
    assert reply["stdout"] == "before\n"


def test_get_reports_missing_functions_and_values(shared):
    assert cell(shared, "import torch\nshared_value = (torch.arange(3, dtype=torch.float64), 'tag', 7)\n"
                        "def shared_fn(x):\n    return x")["ok"]
    assert shared.request("get", deadline(), name="no_such_name_here")["kind"] == "missing"
    assert shared.request("get", deadline(), name="shared_fn")["kind"] == "function"
    reply = shared.request("get", deadline(), name="shared_value")
    assert reply["kind"] == "value"
    value = wire.decode(reply["value"])
    assert value[0].tolist() == [0.0, 1.0, 2.0] and value[0].dtype is torch.float64 and value[1:] == ("tag", 7)


def test_a_call_whose_function_raises_reports_the_error(shared):
    assert cell(shared, "def explode(x):\n    raise KeyError('no such key: ' + str(int(x.sum())))")["ok"]
    reply = shared.request("call", deadline(), name="explode", args=[wire.encode(torch.ones(4))], grad=None)
    assert reply["ok"] is True
    assert reply["error_type"] == "KeyError"
    assert "no such key: 4" in reply["error_message"]


def _f(a, b):
    return torch.sin(a * b) + a**2 * b


def test_a_call_returns_values_and_gradients_that_match_autograd(shared):
    assert cell(shared, "import torch\ndef student_f(a, b):\n    return torch.sin(a * b) + a ** 2 * b\n"
                        "def student_pair(a):\n    return a.sum(), a ** 3")["ok"]
    a = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    b = torch.tensor([1.5, 0.7, -0.4], dtype=torch.float64)
    reply = shared.request("call", deadline(), name="student_f", args=[wire.encode(a), wire.encode(b)],
                           grad={"inputs": [0], "params_of": None, "output": None})
    assert reply["error_type"] is None and reply["differentiable"] is True
    value = wire.decode(reply["value"])
    grads = [wire.decode(g) for g in reply["grads"]]
    # autograd here, on the same inputs
    a_local = a.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(_f(a_local, b).sum(), a_local)
    torch.testing.assert_close(value.detach(), _f(a, b), rtol=1e-12, atol=1e-12)
    assert len(grads) == 1
    torch.testing.assert_close(grads[0], expected, rtol=1e-12, atol=1e-12)
    # and the closed form d/da [sin(ab) + a²b] = b cos(ab) + 2ab
    torch.testing.assert_close(grads[0], b * torch.cos(a * b) + 2 * a * b, rtol=1e-12, atol=1e-12)

    # both inputs, and the second item of a tuple output
    reply = shared.request("call", deadline(), name="student_f", args=[wire.encode(a), wire.encode(b)],
                           grad={"inputs": [0, 1], "params_of": None, "output": None})
    grads = [wire.decode(g) for g in reply["grads"]]
    torch.testing.assert_close(grads[1], a * torch.cos(a * b) + a**2, rtol=1e-12, atol=1e-12)
    reply = shared.request("call", deadline(), name="student_pair", args=[wire.encode(a)],
                           grad={"inputs": [0], "params_of": None, "output": 1})
    torch.testing.assert_close(wire.decode(reply["grads"][0]), 3 * a**2, rtol=1e-12, atol=1e-12)
    # without gradients, the arguments come back as the call left them (the grader compares them)
    plain = shared.request("call", deadline(), name="student_f", args=[wire.encode(a), wire.encode(b)], grad=None)
    assert plain["grads"] is None and "mutated" not in plain
    back = [wire.decode(x) for x in plain["args_after"]]
    assert torch.equal(back[0], a) and torch.equal(back[1], b)


FORKED_MEMORY = """
import os, signal, time
ready_r, ready_w = os.pipe()
pids = []
for k in range(3):
    pid = os.fork()
    if pid == 0:
        b = bytearray(1536 * 2**20)          # 1.5 GiB each: 4.5 GiB together
        for i in range(0, len(b), 4096):
            b[i] = 1
        os.write(ready_w, b"x")              # touched: now hold it until the parent says stop
        time.sleep(120)
        os._exit(0)
    pids.append(pid)
os.close(ready_w)
# all three holding at once however slow the machine: wait until each has touched its memory or died
touched, end = 0, time.monotonic() + 90
while touched < 3 and time.monotonic() < end:
    alive = [p for p in pids if os.waitpid(p, os.WNOHANG) == (0, 0)]
    if len(alive) < 3:
        break
    time.sleep(0.2)
    touched += len(os.read(ready_r, 3)) if touched < 3 else 0
for p in pids:
    try:
        os.kill(p, signal.SIGTERM)
    except ProcessLookupError:
        pass
result = []
for p in pids:
    try:
        result.append(os.waitpid(p, 0)[1])
    except ChildProcessError:                # reaped by the WNOHANG poll above: it died first
        result.append(signal.SIGKILL)
"""


def test_processes_of_one_sandbox_share_its_memory_cap(fresh):
    """prlimit caps each process; the sandbox's control group caps them together (root only)."""
    if os.geteuid() != 0:
        pytest.skip("control groups need root")
    sb = fresh(slot=7)
    assert sb.cgroup is not None, "as root on this machine the sandbox must get its control group"
    statuses = probe(sb, FORKED_MEMORY, seconds=150)
    killed = [s for s in statuses if s == signal.SIGKILL]   # the others end by the cell's SIGTERM
    assert killed, f"three children held 4.5 GiB together under a 4 GiB cap: {statuses}"
    assert cell(sb, "print('still here')")["stdout"].strip() == "still here"
    folders = list(sb.cgroup.dirs)
    sb.close()
    assert not any(f.exists() for f in folders), "the control group outlived its sandbox"


def test_check_available_imports_the_course_inside_a_sandbox(monkeypatch, tmp_path):
    """Binaries alone are not enough: the course's packages must import inside a sandbox."""
    empty = tmp_path / "view" / "coursework"   # a copy missing its modules
    empty.mkdir(parents=True)
    (empty / "__init__.py").write_text("from coursework.registry import check\n", encoding="utf-8")
    real_view = sandbox_module.package_view
    monkeypatch.setattr(sandbox_module, "_PROBED", [])
    monkeypatch.setattr(sandbox_module, "package_view",
                        lambda hidden=(), name="dgm": empty if name == "coursework" else real_view(hidden, name))
    with pytest.raises(SandboxUnavailable, match="do not import inside a sandbox"):
        check_available()
    monkeypatch.setattr(sandbox_module, "package_view", real_view)
    check_available()  # the real view imports


KEYRING_PROBE = """
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
numbers = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
add_key, keyctl = numbers
KEY_SPEC_USER_KEYRING, KEYCTL_READ = -4, 11
key = libc.syscall(add_key, b"user", b"dgm-left-behind", b"a secret for the next one", 25, KEY_SPEC_USER_KEYRING)
add_errno = ctypes.get_errno()
read = libc.syscall(keyctl, KEYCTL_READ, KEY_SPEC_USER_KEYRING, None, 0)
result = {"add_key": [key, add_errno], "keyctl": [read, ctypes.get_errno()], "pid1": open("/proc/1/cmdline", "rb").read().decode("utf-8", "replace")}
"""


def test_the_kernel_keyring_is_closed_so_nothing_passes_to_the_next_sandbox(fresh):
    """The keyring is per-uid kernel state that outlives a process: a sandbox must not be able to
    leave a key for the next student in its slot, nor read one."""
    import errno as errno_module

    if sandbox_module.seccomp_program() is None:
        pytest.fail("no seccomp filter for this architecture: the keyring would stay open")
    first = probe(fresh(slot=6), KEYRING_PROBE)
    assert first["add_key"] == [-1, errno_module.EPERM], first
    assert first["keyctl"] == [-1, errno_module.EPERM], first
    second = probe(fresh(slot=6), KEYRING_PROBE)   # the same slot, so the same uid as root
    assert second["keyctl"] == [-1, errno_module.EPERM], second


def test_the_seccomp_program_is_well_formed():
    import struct

    program = sandbox_module.seccomp_program("x86_64")
    instructions = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    assert len(program) % 8 == 0 and instructions[-1] == (0x06, 0, 0, 0x00050001)   # last: EPERM
    for index, (code, jt, jf, _) in enumerate(instructions):   # every jump lands inside the program
        if code & 0x07 == 0x05:
            assert index + 1 + max(jt, jf) < len(instructions)
    assert sandbox_module.seccomp_program("sparc") is None


def test_no_path_inside_names_the_hosts_repository_venv_or_scratch(fresh):
    """Process 1's command line (bubblewrap's), the worker's, sys.path and sys.prefix show neutral
    paths: not the repository, the virtual environment's host folder or the scratch folder."""
    sb = fresh(slot=6)
    seen = probe(sb, """
import os, sys
result = [open("/proc/1/cmdline", "rb").read().decode("utf-8", "replace"),
          open(f"/proc/{os.getpid()}/cmdline", "rb").read().decode("utf-8", "replace"),
          " ".join(sys.path), sys.prefix, sys.executable, os.getcwd()]
""")
    text = "\n".join(seen)
    for host in {str(REPO), os.path.realpath(sys.prefix), str(sb.scratch)}:
        assert host not in text, (host, text)
    assert sandbox_module.COURSE_DIR in text
