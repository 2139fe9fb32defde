"""The grading sandbox: one unprivileged worker process per submission, and the grader's side of
the conversation with it.

:class:`Sandbox` starts :mod:`autograder.worker` under bubblewrap (``bwrap``):

* **its own namespaces**: no network (a new network namespace with only loopback), its own process
  tree (``--unshare-pid``: killing the sandbox kills everything the student started), IPC and
  hostname; ``--die-with-parent`` and a new session (no terminal to inject keystrokes into);
* **a read-only view of the system** built from nothing: ``/usr`` and the few files of ``/etc`` that
  programs need, the Python installation and the virtual environment, and the course's two
  packages alone — ``dgm`` and ``coursework`` (what a notebook's set-up cell imports) — not the
  repository, so no ``solutions/``, gradebook, hidden tests or other students. Both are
  source-only copies (:func:`package_view`) without compiled byte-code, and ``dgm``'s copy lacks
  the reference modules an exercise re-implements (importing them fails). The only writable place
  is a fresh, empty scratch folder (its home and ``TMPDIR``);
* **an unprivileged user**: ``setpriv`` drops to a uid of its own (one per parallel slot, so a fork
  bomb in one sandbox cannot exhaust another's process quota), with no capabilities, an empty
  bounding set and ``no_new_privs``;
* **a control group** (:class:`CGroup`, as root): memory and processes of the whole sandbox, and
  one core of CPU, so forked children cannot add up past the caps or starve other sandboxes;
* **caps** (``prlimit``): address space, processes, file size, open files and CPU seconds; wall-clock
  time per request (a cell, a check) and per notebook is enforced here by killing the sandbox, and
  a watchdog kills it when its scratch folder outgrows its cap;
* **a clean environment**: nothing in it says "grading", and single-threaded maths libraries.

Replies are read as JSON lines of bounded length from a pipe (never unpickled); whatever they say
is only data for the checks in the grader.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("worker.py")
SANDBOX_HOME = "/home/student"
WORKER_PATH = "/opt/kernel/kernel.py"
#: where the sandbox sees the course's packages (:data:`PACKAGES`): a neutral path, not the host's
COURSE_DIR = "/opt/course"
#: files of /etc that programs in the sandbox read (dynamic linker, time zone, users, name service)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf",
             "hosts", "mime.types", "alternatives", "ssl/certs", "fonts")


@dataclass(frozen=True)
class Limits:
    """Caps on one submission's sandbox."""

    cell_timeout: float = 60.0              # seconds per cell, and per task's checks
    notebook_budget: float = 600.0          # seconds for the whole notebook, restarts included
    memory_bytes: int = 4 * 2**30           # address space of the worker (RLIMIT_AS)
    processes: int = 64                     # processes and threads of the sandbox's user
    file_bytes: int = 64 * 2**20            # largest file it may write
    open_files: int = 256
    scratch_bytes: int = 256 * 2**20        # everything it writes, together
    output_chars: int = 64 * 1024           # kept of a cell's stdout and of its stderr
    reply_bytes: int = 4 * 2**20            # longest reply line accepted (legitimate ones: < 16 KiB)
    start_timeout: float = 90.0             # seconds for the worker to start (imports torch)
    max_restarts: int = 3                   # fresh workers after a timeout or a crash
    judge_memory_bytes: int = 2 * 2**30     # the grader's child that judges a value answer (SymPy)
    cpus: float = 1.0                       # CPU share of a sandbox (cgroup quota), in cores


class SandboxUnavailable(RuntimeError):
    """Sandboxed grading cannot run on this machine (no bwrap, or not allowed to use it)."""


class SandboxFailure(Exception):
    """The worker did not answer: ``kind`` is ``timeout``, ``died``, ``oom`` or ``protocol``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


_PROBED: list[bool] = []


def check_available() -> None:
    """Raise :class:`SandboxUnavailable` with the fix when sandboxed grading cannot run here: the
    tools are missing, or bubblewrap cannot build its namespaces (tried once per process)."""
    if bwrap_path() is None:
        raise SandboxUnavailable("bubblewrap is not installed: `apt-get install bubblewrap` (Debian/Ubuntu) "
                                 "or `dnf install bubblewrap`; grading never runs student code unsandboxed")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        raise SandboxUnavailable("setpriv (util-linux) is needed to drop privileges inside the sandbox")
    if shutil.which("prlimit") is None:
        raise SandboxUnavailable("prlimit (util-linux) is needed to cap the sandbox's resources")
    if _PROBED:
        return
    base = [bwrap_path(), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            *(["--unshare-user"] if os.geteuid() != 0 else []), "--die-with-parent", "--ro-bind", "/usr", "/usr",
            *[a for top in ("bin", "lib", "lib64") if Path("/", top).exists()
              for a in (["--symlink", os.readlink(f"/{top}"), f"/{top}"] if Path("/", top).is_symlink()
                        else ["--ro-bind", f"/{top}", f"/{top}"])],
            "--proc", "/proc", "--dev", "/dev"]
    _probe(base + ["--remount-ro", "/", "--", "true"],
           "bubblewrap cannot build a sandbox on this machine ({why}); it needs root or unprivileged user "
           "namespaces, and a container must allow unshare/mount (see docs/grading.md)")
    # and the course's packages import inside one, as the worker will import them
    binds = [a for p in _host_python_paths() if not p.startswith("/usr/") for a in ("--ro-bind", p, sandbox_path(p))]
    for name in PACKAGES:
        binds += ["--ro-bind", str(package_view((), name)), f"{COURSE_DIR}/{name}"]
    code = f"import sys; sys.path[:0] = [{COURSE_DIR!r}]; " + "; ".join(f"import {name}" for name in PACKAGES)
    _probe(base + binds + ["--remount-ro", "/", "--setenv", "HOME", "/tmp", "--", sandbox_python(), "-I", "-c", code],
           "the course's packages do not import inside a sandbox ({why}); is the virtual environment complete "
           "(`make env`)?", timeout=120)
    _PROBED.append(True)


def _probe(cmd: list[str], message: str, timeout: float = 30) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxUnavailable(f"bubblewrap could not be started: {err}") from err
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit code {done.returncode}"
        raise SandboxUnavailable(message.format(why=why))


#: parallel sandboxes one grader process can run, each with a uid of its own
MAX_SLOTS = 64


def sandbox_uid(slot: int) -> int:
    """The unprivileged uid of parallel slot ``slot`` (< :data:`MAX_SLOTS`) of this grader process:
    distinct per slot, and per grader process (shards on one machine), so process quotas are
    never shared."""
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"slot must be in [0, {MAX_SLOTS}); got {slot}")
    return 200_000 + (os.getpid() % 30_000) * MAX_SLOTS + slot


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts
    return [str(Path(*parts[: i + 1])) for i in range(1, len(parts) - 1)]


def _host_python_paths() -> list[str]:
    """Folders the worker's Python needs: the installation, the virtual environment and every
    site-packages folder on sys.path (the grader's own environment is the worker's)."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(os.path.realpath(p))
    # drop folders inside another one already bound
    ordered = sorted(paths, key=len)
    kept: list[str] = []
    for p in ordered:
        if not any(p == k or p.startswith(k + os.sep) for k in kept):
            kept.append(p)
    return kept


#: where the sandbox sees the grader's virtual environment (a neutral path, not the host's)
VENV_DIR = "/opt/venv"


def sandbox_path(host: str) -> str:
    """Where the sandbox sees the host folder ``host`` of the Python installation: the virtual
    environment (when the grader runs in one) moves to :data:`VENV_DIR`, so that no path inside
    — ``sys.prefix``, ``sys.executable``, ``/proc/*/cmdline`` — names the host's repository."""
    venv, base = os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)
    for root in (sys.prefix, venv):
        if venv != base and (host == root or host.startswith(root + os.sep)):
            return VENV_DIR + host[len(root):]
    return host


def sandbox_python() -> str:
    """The worker's interpreter, as the sandbox sees it."""
    return sandbox_path(sys.executable)


#: the packages a sandbox sees (each a source-only copy, :func:`package_view`)
PACKAGES = ("dgm", "coursework")


def package_dir(name: str) -> str:
    """The folder of the installed package ``name`` (``"dgm"`` or ``"coursework"``)."""
    import importlib

    return os.path.realpath(Path(importlib.import_module(name).__file__).parent)


_VIEWS: dict[tuple[str, tuple[str, ...]], Path] = {}
_VIEWS_LOCK = threading.Lock()


def package_view(hidden_modules: tuple[str, ...] = (), name: str = "dgm") -> Path:
    """The package ``name`` as a sandbox sees it: a copy of its sources only — no ``__pycache__``
    (compiled references could be loaded with ``marshal``) — without the hidden modules
    (``"dgm.gan"``: those of this package are left out). Made once per grader process, package and
    set of hidden modules, readable by every sandbox user, removed at exit."""
    package = package_dir(name)
    mine = tuple(sorted(m for m in hidden_modules if m.startswith(name + ".")))
    key = (package, mine)
    with _VIEWS_LOCK:
        view = _VIEWS.get(key)
        if view is not None and view.is_dir():
            return view
        root = Path(tempfile.mkdtemp(prefix=f"{name}-package-view-"))
        os.chmod(root, 0o755)
        hidden = set()
        for module in mine:
            rel = Path(*module.split(".")[1:])
            hidden |= {Path(package, rel).with_suffix(".py"), Path(package, rel)}

        def ignore(folder: str, names: list[str]) -> list[str]:
            return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))
                    or Path(folder, n) in hidden]

        view = root / name
        shutil.copytree(package, view, ignore=ignore)
        for folder, dirs, files in os.walk(view):
            os.chmod(folder, 0o755)
            for file in files:
                os.chmod(os.path.join(folder, file), 0o644)
        atexit.register(shutil.rmtree, root, True)
        _VIEWS[key] = view
        return view


#: seccomp's view of the machine: audit architecture and the numbers of the kernel keyring's calls
#: (add_key, request_key, keyctl); see :func:`seccomp_program`
_KEYRING_SYSCALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}


def seccomp_program(machine: str | None = None) -> bytes | None:
    """A classic-BPF seccomp filter (the bytes of ``struct sock_filter[]``) that makes the kernel
    keyring's system calls fail with EPERM, and every call of another ABI (32-bit, x32) too.

    The keyring is per-uid kernel state that survives a process: a sandbox that runs as a slot's
    uid could leave a key there for the next student in that slot to read. None on a machine this
    filter does not know (its numbers differ per architecture): docs/grading.md says what then."""
    import platform
    import struct

    known = _KEYRING_SYSCALLS.get(machine or platform.machine())
    if known is None:
        return None
    arch, (add_key, request_key, keyctl) = known
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    program = [
        (ld_abs, 0, 0, 4),               # 0: A = seccomp_data.arch
        (jeq, 0, 6, arch),               # 1: another ABI -> 8 (deny)
        (ld_abs, 0, 0, 0),               # 2: A = seccomp_data.nr
        (jge, 4, 0, 0x40000000),         # 3: an x32 call -> 8 (deny)
        (jeq, 3, 0, add_key),            # 4: -> 8
        (jeq, 2, 0, request_key),        # 5: -> 8
        (jeq, 1, 0, keyctl),             # 6: -> 8
        (ret, 0, 0, allow),              # 7
        (ret, 0, 0, deny),               # 8
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def build_command(scratch: Path, uid: int, limits: Limits, hidden_modules: tuple[str, ...] = (),
                  reply_fd: int = 3, seccomp_fd: int | None = None) -> list[str]:
    """The argv that runs the worker in a sandbox whose only writable folder is ``scratch``; it
    writes its replies to the inherited descriptor ``reply_fd``, and bubblewrap reads its seccomp
    filter (:func:`seccomp_program`) from ``seccomp_fd`` when given."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap is not installed")
    cmd = [bwrap, *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
           "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--clearenv"]
    unprivileged = os.geteuid() != 0
    if unprivileged:
        cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    for top in ("bin", "lib", "lib64", "lib32", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            cmd += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            cmd += ["--ro-bind", str(host), str(host)]
    cmd += ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        host = Path("/etc") / name
        if host.exists():
            for a in _ancestors(str(host)):
                if a != "/etc":
                    cmd += ["--perms", "0755", "--dir", a]
            cmd += ["--ro-bind", str(host), str(host)]
    binds = [(p, sandbox_path(p)) for p in _host_python_paths()]
    for name in PACKAGES:
        binds.append((str(package_view(hidden_modules, name)), f"{COURSE_DIR}/{name}"))
    made: set[str] = {"/", "/usr", "/etc"}
    for source, path in binds:
        for a in _ancestors(path + "/x"):
            if a not in made and not a.startswith("/usr/"):
                cmd += ["--perms", "0755", "--dir", a]
                made.add(a)
        cmd += ["--ro-bind", source, path]
    cmd += ["--perms", "0755", "--dir", "/home", "--perms", "0755", "--dir", "/opt", "--perms", "0755",
            "--dir", "/opt/kernel", "--ro-bind", str(WORKER), WORKER_PATH,
            "--bind", str(scratch), SANDBOX_HOME, "--perms", "0755", "--dir", "/tmp",
            "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_HOME]
    env = {"HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_HOME, "PATH": f"{sandbox_path(sys.prefix)}/bin:/usr/local/bin:/usr/bin:/bin",
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{SANDBOX_HOME}/.matplotlib",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    cmd.append("--")
    if not unprivileged:
        cmd += [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    cpu = int(limits.notebook_budget + 30)
    cmd += [shutil.which("prlimit") or "prlimit", f"--as={limits.memory_bytes}", f"--nproc={limits.processes}",
            f"--fsize={limits.file_bytes}", f"--nofile={limits.open_files}", f"--cpu={cpu}", "--core=0", "--",
            sandbox_python(), "-I", "-u", WORKER_PATH, str(reply_fd), str(limits.output_chars),
            COURSE_DIR, str(limits.reply_bytes)]
    return cmd


def _processes_of(uid: int) -> list[int]:
    """Pids of the processes whose real uid is ``uid`` (read from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if line.split()[1] == str(uid):
                            pids.append(int(entry))
                        break
        except OSError:
            continue
    return pids


def _wait_until_gone(uid: int, timeout: float) -> bool:
    """Wait until no process of ``uid`` is left (killing stragglers); True when none is."""
    end = time.monotonic() + timeout
    while True:
        left = _processes_of(uid)
        if not left:
            return True
        if time.monotonic() > end:
            return False
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


#: what every file or folder costs at least, in bytes: empty files use inodes, not blocks
ENTRY_BYTES = 4096


class CGroup:
    """A control group of the sandbox's processes (cgroup v1 controllers, or cgroup v2 when the
    grader's own group may have children): memory and process caps for the *whole* sandbox — the
    worker's ``prlimit`` caps count per process, and a student can fork — and one core of CPU, so a
    busy sandbox cannot starve its neighbours. Best effort: where the grader may not create groups
    (no root, a container without delegation), :meth:`create` returns None and the per-process caps
    stand alone."""

    ROOT = Path("/sys/fs/cgroup")

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs, self.version = dirs, version

    @classmethod
    def create(cls, name: str, limits: Limits) -> "CGroup | None":
        try:
            if (cls.ROOT / "cgroup.controllers").is_file():
                return cls._create_v2(name, limits)
            return cls._create_v1(name, limits)
        except OSError:
            return None

    @staticmethod
    def _own_path(controller: str) -> str:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controller in controllers.split(",") or (controller == "" and controllers == ""):
                    return path.lstrip("/")
        return ""

    @classmethod
    def _create_v1(cls, name: str, limits: Limits) -> "CGroup | None":
        settings = {"memory": {"memory.limit_in_bytes": str(limits.memory_bytes)},
                    "pids": {"pids.max": str(limits.processes)},
                    "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(int(100000 * limits.cpus))}}
        made: list[Path] = []
        try:
            for controller, values in settings.items():
                base = cls.ROOT / controller
                if not (base / "tasks").exists():
                    if controller == "cpu":
                        continue  # CPU sharing is a nicety; memory and pids are not
                    raise OSError(f"no cgroup v1 {controller} controller")
                folder = base / cls._own_path(controller) / name
                folder.mkdir()
                made.append(folder)
                for key, value in values.items():
                    (folder / key).write_text(value)
        except OSError:
            CGroup(made, 1).remove()
            return None
        return cls(made, 1)

    @classmethod
    def _create_v2(cls, name: str, limits: Limits) -> "CGroup | None":
        folder = cls.ROOT / cls._own_path("") / name
        folder.mkdir()
        group = cls([folder], 2)
        try:
            (folder / "memory.max").write_text(str(limits.memory_bytes))
            (folder / "pids.max").write_text(str(limits.processes))
            try:
                (folder / "cpu.max").write_text(f"{int(100000 * limits.cpus)} 100000")
            except OSError:
                pass
        except OSError:
            group.remove()
            return None
        return group

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def out_of_memory(self) -> bool:
        """Whether the kernel's OOM killer acted in this group."""
        for d in self.dirs:
            try:
                if self.version == 2:
                    events = dict(line.split() for line in (d / "memory.events").read_text().splitlines())
                    if int(events.get("oom_kill", 0)) > 0:
                        return True
                elif d.parent.name != "" and (d / "memory.failcnt").exists():
                    oom = (d / "memory.oom_control").read_text() if (d / "memory.oom_control").exists() else ""
                    if "oom_kill " in oom and int(oom.split("oom_kill ")[1].split()[0]) > 0:
                        return True
            except (OSError, ValueError, IndexError):
                continue
        return False

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _scratch_size(root: Path, cap: int) -> int:
    """Bytes used under ``root``, each entry counted as at least :data:`ENTRY_BYTES` (so a flood of
    empty files is charged too); stops counting once past ``cap``."""
    total = 0
    stack = [str(root)]
    while stack and total <= cap:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            total += ENTRY_BYTES
                        else:
                            total += max(ENTRY_BYTES, entry.stat(follow_symlinks=False).st_blocks * 512)
                    except OSError:
                        continue
                    if total > cap:
                        break
        except OSError:
            continue
    return total


class Sandbox:
    """One running worker: :meth:`request` sends a request and waits for its reply or a deadline."""

    def __init__(self, limits: Limits, slot: int = 0, hidden_modules: tuple[str, ...] = (),
                 scratch_parent: str | None = None) -> None:
        self.limits, self.slot, self.hidden_modules = limits, slot, tuple(hidden_modules)
        self.scratch_parent = scratch_parent
        self.proc: subprocess.Popen | None = None
        self.scratch: Path | None = None
        self._replies: queue.Queue = queue.Queue(maxsize=1)
        self._expected: int | None = None     # the id of the one reply the grader waits for
        self._failure: SandboxFailure | None = None
        self.startup_seconds = 0.0
        self.uid: int | None = None
        self.cgroup: CGroup | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, deadline: float | None = None) -> None:
        check_available()
        uid = sandbox_uid(self.slot)
        self.uid = uid if os.geteuid() == 0 else None
        self.scratch = Path(tempfile.mkdtemp(prefix="dgm-sandbox-", dir=self.scratch_parent))
        os.chmod(self.scratch, 0o700)
        if os.geteuid() == 0:
            os.chown(self.scratch, uid, uid)
        read_fd, write_fd = os.pipe()
        program = seccomp_program()
        seccomp_fd = None
        if program is not None:  # a pipe holding the filter: bubblewrap reads it once, at start
            seccomp_fd, filter_w = os.pipe()
            os.write(filter_w, program)
            os.close(filter_w)
        cmd = build_command(self.scratch, uid, self.limits, self.hidden_modules, reply_fd=write_fd,
                            seccomp_fd=seccomp_fd)
        # bubblewrap is the sandbox's process 1, and /proc/1/cmdline is readable inside: hand it its
        # arguments (host paths of the binds, the scratch folder) through a pipe, not its argv
        split = cmd.index("--")
        args_fd, args_w = os.pipe()
        data = b"".join(a.encode() + b"\0" for a in cmd[1:split])
        if len(data) > 60_000:  # a pipe holds 64 KiB: the write must not block before bwrap reads
            raise SandboxUnavailable(f"the sandbox's arguments are too long ({len(data)} bytes)")
        os.write(args_w, data)
        os.close(args_w)
        cmd = [cmd[0], "--args", str(args_fd), *cmd[split:]]
        self.cgroup = CGroup.create(self.scratch.name, self.limits) if os.geteuid() == 0 else None
        if self.cgroup is not None:  # join the group before bwrap starts: nothing escapes it
            files = self.cgroup.procs_files
            script = "".join(f'echo $$ > "${i + 1}" && ' for i in range(len(files))) + f'shift {len(files)} && exec "$@"'
            cmd = ["/bin/sh", "-c", script, "sh", *files, *cmd]
        self._failure = None
        self._replies = queue.Queue(maxsize=1)
        self._expected = 0  # the worker's "ready"
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(write_fd, args_fd) if seccomp_fd is None else (write_fd, args_fd, seccomp_fd),
                start_new_session=True, close_fds=True)
        finally:
            os.close(write_fd)
            os.close(args_fd)
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        threading.Thread(target=self._read, args=(read_fd,), daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()
        limit = self.limits.start_timeout if deadline is None else max(1.0, min(self.limits.start_timeout,
                                                                                  deadline - time.monotonic()))
        self._wait_for(0, time.monotonic() + limit, what="starting the kernel")
        self.startup_seconds = time.monotonic() - t0

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()
            if self.uid is not None:  # the sandbox's processes die just after bwrap: wait for them
                _wait_until_gone(self.uid, 10.0)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.scratch is not None:
            for _ in range(20):
                shutil.rmtree(self.scratch, ignore_errors=True)
                if not self.scratch.exists():
                    break
                time.sleep(0.05)
            self.scratch = None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- requests -----------------------------------------------------------------------------

    def request(self, op: str, deadline: float, **fields: Any) -> dict:
        """Send ``{"op": op, **fields}``; return the reply, or raise :class:`SandboxFailure` (after
        killing the worker) if none comes before ``deadline`` (``time.monotonic()`` seconds)."""
        if not self.alive:
            raise SandboxFailure("died", "the kernel is not running")
        rid = secrets.randbits(48) + 1  # unguessable: a reply forged in advance matches nothing
        line = json.dumps({"op": op, "id": rid, **fields}).encode("utf-8") + b"\n"
        self._expected = rid
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._wait_for(-1, time.monotonic() + 2, what=op)  # collect the reason it died
            raise SandboxFailure("died", "the kernel died") from None
        return self._wait_for(rid, deadline, what=op)

    def _wait_for(self, rid: int, deadline: float, what: str) -> dict:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise SandboxFailure("timeout", f"no answer within the time limit while {what}")
            try:
                item = self._replies.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self._failure is not None:
                    failure = self._failure
                    self.close()
                    raise failure from None
                if self.proc is not None and self.proc.poll() is not None and self._replies.empty():
                    failure = self._failure or self._death()
                    self.close()
                    raise failure from None
                continue
            if isinstance(item, SandboxFailure):
                self.close()
                raise item
            if isinstance(item, dict) and item.get("id") == rid:
                return item
            # replies to earlier requests (after a timeout) and stray lines are ignored

    def _death(self) -> SandboxFailure:
        code = self.proc.poll() if self.proc is not None else None
        if code is not None and code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            if sig == "SIGXCPU":
                return SandboxFailure("timeout", "the kernel used up its CPU time")
            if sig == "SIGKILL":
                if self.cgroup is not None and self.cgroup.out_of_memory():
                    return SandboxFailure("oom", f"its processes together used more than "
                                                 f"{self.limits.memory_bytes // 2**20} MiB")
                return SandboxFailure("died", "the kernel was killed")
            return SandboxFailure("died", f"the kernel died ({sig})")
        return SandboxFailure("died", f"the kernel exited (exit code {code})")

    def _read(self, fd: int) -> None:
        """Read the worker's replies: one JSON object per line, each the reply to the one request
        the grader is waiting for. What holds the grader's memory is bounded — a line of at most
        :attr:`Limits.reply_bytes`, a queue of one reply — and a sandbox that sends a longer line,
        a line that is not JSON, or a reply nobody asked for (a forged one, a second one, one from
        a child process writing to the reply pipe) breaks the protocol: it is killed and reported."""
        cap = self.limits.reply_bytes
        buf = bytearray()

        def broken(why: str) -> None:
            self._failure = SandboxFailure("protocol", f"the kernel broke the grading protocol: {why}")
            self._kill_quietly()

        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                try:
                    chunk = pipe.read(min(1 << 20, cap + 1 - len(buf)))
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    line, buf = bytes(buf[:nl]), buf[nl + 1:]
                    try:
                        item = json.loads(line)
                    except (ValueError, RecursionError):
                        return broken("it sent a line that is not a reply")
                    expected, self._expected = self._expected, None
                    if not isinstance(item, dict) or expected is None or item.get("id") != expected:
                        return broken("it sent a reply nobody asked for")
                    try:
                        self._replies.put_nowait(item)
                    except queue.Full:
                        return broken("it sent a reply nobody asked for")
                if len(buf) > cap:
                    return broken(f"it sent a line longer than {cap // 2**20} MiB")

    def _watch(self) -> None:
        cap = self.limits.scratch_bytes
        while self.alive:
            scratch = self.scratch
            if scratch is not None and _scratch_size(scratch, cap) > cap:
                self._failure = SandboxFailure("died", f"it wrote more than {cap // 2**20} MiB (or more than "
                                                       f"{cap // ENTRY_BYTES} files) to its folder")
                self._kill_quietly()
                return
            time.sleep(0.5)

    def _kill_quietly(self) -> None:
        proc = self.proc
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
