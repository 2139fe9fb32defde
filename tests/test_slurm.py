"""docs/grading.md's Slurm recipe, run for real on a single-node Slurm cluster on localhost.

The test brings up munged, slurmctld and slurmd, each with its own files in a temporary folder
(munge key and socket, slurm.conf, state, spool, logs, free ports), so no system file is read or
edited; the daemons are stopped and the folder removed whatever happens. It then takes the
recipe's three code blocks out of docs/grading.md (grade.sbatch, merge.sbatch and the submit
commands), so the test follows the guide when the guide changes, and:

1. submits them as written — an array job whose tasks run ``grade --shard $SLURM_ARRAY_TASK_ID/N``
   and a merge job with ``--dependency=afterok:<array job>`` — over the three sample submissions,
   waits for both (bounded), and checks that the merged grades.csv and results.json equal an
   unsharded ``grade`` run with the same seed;
2. submits them again, kills one array task while it runs, and checks that the merge job never
   starts (Slurm: ``DependencyNeverSatisfied``) and that the merge command run by hand on the
   shards that finished refuses, naming the missing shard, and writes no gradebook.

What the recipe's text is changed into, and why (everything else runs as written): the paths
(``/shared/dgm-course`` → this repository, ``/shared/grading/01-elbo`` → a temporary folder) and the
size of the job (``--array=0-7`` → ``0-2``: the three samples, one per shard; ``--cpus-per-task=8`` →
``1``: the node has as few as 2 cores), the two things the guide tells a user to set.

The jobs run as an ordinary user, as on a real cluster: ``sbatch`` is called as ``nobody``, so
the tasks run as ``nobody`` too — the recipe's ``bwrap --unshare-user`` check and the grader's
unprivileged path (a user namespace, no per-slot uids) are what runs. The job folders belong to
that user. The course's interpreter or checkout may sit below a folder only root may enter (a
Python under ``/root``, a clone in a ``mktemp -d`` folder); slurmd, and so every job it starts, then
runs in a mount namespace of its own in which each such folder is covered by an empty tmpfs that
holds only the paths the jobs need (the interpreter's prefix, the checkout), bound to the real
ones. Nothing outside that namespace changes.

Slurm missing makes the test fail, naming the install command (``make system-deps``); it never skips.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.course import REPO_ROOT
from autograder.samples import ASSIGNMENT, SAMPLES_DIR

pytestmark = pytest.mark.slow

DOC = REPO_ROOT / "docs" / "grading.md"
SHARDS = 3                      # the three samples (alice, bob, carol), one per shard
JOB_TIMEOUT = 600               # seconds for a whole array + merge on 2 cores (it takes about a minute)
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "sinfo")
INSTALL = "run `make system-deps` (Debian/Ubuntu: sudo apt-get install slurmctld slurmd slurm-client munge)"


def log(msg: str) -> None:
    print(f"[slurm] {msg}", flush=True)


# --- the recipe, from the guide ---------------------------------------------------------------------

def recipe_blocks() -> tuple[str, str, str]:
    """(grade.sbatch, merge.sbatch, submit commands): the ```bash blocks of the guide's Slurm section."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"^### Slurm\n(.*?)(?=^##+ )", text, flags=re.S | re.M)
    assert match, "docs/grading.md has no '### Slurm' section"
    blocks = re.findall(r"^```bash\n(.*?)^```", match.group(1), flags=re.S | re.M)
    grade = [b for b in blocks if b.startswith("#!/bin/bash\n# grade.sbatch")]
    merge = [b for b in blocks if b.startswith("#!/bin/bash\n# merge.sbatch")]
    submit = [b for b in blocks if not b.startswith("#!") and "sbatch --parsable" in b]
    assert len(grade) == len(merge) == len(submit) == 1, (
        "the Slurm section of docs/grading.md should have one grade.sbatch block, one merge.sbatch block "
        f"and one block of submit commands; found {len(blocks)} bash blocks")
    return grade[0], merge[0], submit[0]


def substitute(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        assert old in text, f"docs/grading.md's Slurm recipe no longer contains {old!r}; update tests/test_slurm.py"
        text = text.replace(old, new)
    return text


# --- the cluster --------------------------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def mem_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


#: The ordinary user the jobs run as (no account is created: nobody exists on every Linux system).
JOB_USER = "nobody"


def hidden_ancestors(path: Path) -> list[Path]:
    """The folders above ``path`` (and ``path``) that other users may not enter (no o+x)."""
    path = Path(path).resolve()
    return [a for a in [*reversed(path.parents), path] if not os.stat(a).st_mode & 0o001]


def namespace_script(paths: list[Path]) -> str:
    """Shell commands (run as root in a new mount namespace) after which every path in ``paths`` is
    reachable by any user: each topmost folder that others may not enter is covered by a tmpfs
    (mode 755) into which the needed paths are bound from their real place."""
    covers: dict[Path, list[Path]] = {}
    for p in paths:
        hidden = hidden_ancestors(p)
        if hidden:
            covers.setdefault(hidden[0], []).append(Path(p).resolve())
    lines = ["set -euo pipefail"]
    for k, (top, inside) in enumerate(sorted(covers.items())):
        stage = f"/run/dgm-slurm-stage-{os.getpid()}-{k}"
        lines += [f"mkdir -p {stage}", f"mount --bind {top} {stage}", f"mount -t tmpfs -o mode=755 tmpfs {top}"]
        for p in sorted(inside, key=lambda q: len(q.parts)):
            rel = p.relative_to(top)
            lines += [f"mkdir -p {p}", f"mount --bind {stage}/{rel} {p}"] if str(rel) != "." else []
        lines += [f"umount {stage}", f"rmdir {stage}"]
    return "\n".join(lines)


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.user = pwd.getpwnam(JOB_USER)
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.conf = root / "etc" / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.env["PATH"] = self.env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"  # munged, slurmd as a user
        for var in list(self.env):  # nothing of an outer Slurm job or of the user's sbatch defaults
            if var.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_")) and var != "SLURM_CONF":
                del self.env[var]

    def run(self, *cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        result = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=60, **kw)
        if check:
            assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, name: str, *cmd: str) -> None:
        out = open(self.root / "log" / f"{name}.out", "w")
        self.procs.append((name, subprocess.Popen(list(cmd), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                  start_new_session=True)))
        out.close()

    def daemon_logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-25:]
            parts.append(f"--- {path.name} (last lines)\n" + "\n".join(lines))
        return "\n".join(parts)

    def up(self) -> None:
        r = self.root
        for d in ("etc", "munge-key", "munge-run", "state", "spool", "log"):
            (r / d).mkdir()
        (r / "munge-key").chmod(0o700)
        key = r / "munge-key" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = r / "munge-run" / "munge.socket"
        self.start("munged", "munged", "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                   f"--pid-file={r / 'munge-run' / 'munged.pid'}", f"--log-file={r / 'log' / 'munged.log'}",
                   f"--seed-file={r / 'munge-run' / 'munged.seed'}")
        self.wait_for(lambda: sock.exists(), 20, "munged's socket")
        ctld_port, d_port = free_ports(2)
        cpus = os.cpu_count() or 1
        self.memory = mem_mib() - 256
        self.conf.write_text(f"""\
ClusterName=dgmtest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'state' / 'slurmctld.pid'}
SlurmdPidFile={r / 'spool' / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
PlugStackConfig={r / 'etc' / 'plugstack.conf'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerParameters=sched_interval=1
MinJobAge=3600
MailProg=/bin/true
NodeName=localhost NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={self.memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        (r / "etc" / "plugstack.conf").write_text("")  # not the system's /etc/slurm/plugstack.conf
        self.start("slurmctld", "slurmctld", "-D", "-i", "-f", str(self.conf))
        self.wait_for(lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") >= 1, 30, "slurmctld")
        # slurmd (and every job it starts) in a mount namespace where the jobs' user reaches the
        # interpreter and the checkout (see the module docstring)
        prepare = namespace_script([Path(sys.base_prefix), Path(sys.prefix), REPO_ROOT])
        log(f"slurmd's mount namespace:\n{prepare}")
        self.start("slurmd", "unshare", "--mount", "--propagation", "private", "bash", "-c",
                   f'{prepare}\nexec slurmd -D -N localhost -f "$SLURM_CONF"')
        self.wait_for(lambda: self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle", 60,
                      "slurmd to register (node idle)")
        log(f"cluster up: {self.run('sinfo').stdout.strip()}")

    def wait_for(self, ready, seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for name, p in self.procs:
                if p.poll() is not None:
                    raise AssertionError(f"{name} exited with {p.returncode} while waiting for {what}\n"
                                         + self.daemon_logs())
            if ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}\n" + self.daemon_logs())

    def down(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (each by its own process)."""
        if any(name == "slurmctld" and p.poll() is None for name, p in self.procs):
            self.run("scancel", "--full", "--user", JOB_USER, check=False)
            end = time.monotonic() + 30
            while time.monotonic() < end and self.run("squeue", "-h", "-t", "RUNNING,COMPLETING",
                                                       check=False).stdout.strip():
                time.sleep(0.5)
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
            log(f"{name} stopped (exit {p.returncode})")

    # --- jobs ---
    def tasks(self, job: str) -> list[dict[str, str]]:
        """One dict per job (one per array task), from ``scontrol -o show job``."""
        out = self.run("scontrol", "-o", "show", "job", job).stdout
        return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines() if line.strip()]

    def states(self, job: str) -> str:
        def name(t):  # an array task as Slurm writes it, <array job>_<task> (its own job id in brackets)
            if "ArrayTaskId" not in t:
                return t["JobId"]
            own = f" [job {t['JobId']}]" if t["JobId"] != t["ArrayJobId"] else ""
            return f"{t['ArrayJobId']}_{t['ArrayTaskId']}{own}"
        return ", ".join(f"{name(t)}={t['JobState']}({t['Reason']}, exit {t['ExitCode']})"
                         for t in sorted(self.tasks(job), key=lambda t: t.get("ArrayTaskId", "")))

    def wait_done(self, job: str, seconds: float, pending_ok=None) -> list[dict[str, str]]:
        """Wait until no task of ``job`` is pending or running (or ``pending_ok(task)`` says a pending one
        never will run); the tasks, then."""
        end = time.monotonic() + seconds
        last = ""
        while True:
            tasks = self.tasks(job)
            live = [t for t in tasks if t["JobState"] in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
                    and not (pending_ok and pending_ok(t))]
            now = self.states(job)
            if now != last:
                log(f"job {job}: {now}")
                last = now
            if not live:
                return tasks
            if time.monotonic() > end:
                raise AssertionError(f"job {job} not done after {seconds} s: {now}\n" + self.daemon_logs())
            time.sleep(1)


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


@pytest.fixture(scope="module")
def cluster():
    missing = missing_tools()
    if missing:
        pytest.fail(f"the Slurm test needs {', '.join(missing)}, not installed. To install them, {INSTALL}",
                    pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the Slurm test runs slurmd, which needs root (as in CI); run it as root", pytrace=False)
    # not below pytest's own temporary folder, which only root may enter: the jobs' user works here
    root = Path(tempfile.mkdtemp(prefix="dgm-slurm-"))
    root.chmod(0o755)
    c = Cluster(root)
    try:
        c.up()
        yield c
    finally:
        c.down()
        shutil.rmtree(root, ignore_errors=True)


# --- the test -----------------------------------------------------------------------------------------

def prepared_recipe(workdir: Path, data: Path, user: pwd.struct_passwd) -> tuple[str, Path, Path, Path]:
    """The recipe written into ``workdir`` for ``data``, both folders given to ``user`` (who submits
    and runs the jobs): (seed, grade.sbatch, merge.sbatch, submit.sh)."""
    grade, merge, submit = recipe_blocks()
    seed = re.search(r"^SEED=(\d+)", grade, flags=re.M)
    assert seed, "grade.sbatch in docs/grading.md sets no SEED=<digits>"
    grade = substitute(grade, [("COURSE=/shared/dgm-course", f"COURSE={REPO_ROOT}"),
                               ("DATA=/shared/grading/01-elbo", f"DATA={data}"),
                               ("#SBATCH --array=0-7\n", f"#SBATCH --array=0-{SHARDS - 1}\n"),
                               ("#SBATCH --cpus-per-task=8\n", "#SBATCH --cpus-per-task=1\n")])
    merge = substitute(merge, [("/shared/dgm-course", str(REPO_ROOT)), ("/shared/grading/01-elbo", str(data))])
    if mem_mib() - 256 < 8 * 1024:  # a small CI machine: the node cannot offer the recipe's 8G
        grade = substitute(grade, [("#SBATCH --mem=8G\n", "#SBATCH --mem=1G\n")])
    workdir.mkdir(parents=True)
    paths = []
    for name, text in (("grade.sbatch", grade), ("merge.sbatch", merge), ("submit.sh", "set -euo pipefail\n" + submit)):
        (workdir / name).write_text(text)
        paths.append(workdir / name)
    (data / "submissions").mkdir(parents=True)
    for nb in sorted((REPO_ROOT / SAMPLES_DIR).glob("*.ipynb")):
        shutil.copyfile(nb, data / "submissions" / nb.name)
    for folder in (workdir, data):
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
    return seed.group(1), *paths


def submit(cluster: Cluster, workdir: Path) -> tuple[str, str]:
    """Run the guide's submit commands in ``workdir``: (array job id, merge job id)."""
    u = cluster.user
    r = cluster.run("setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--clear-groups", "env",
                    f"HOME={workdir}", f"USER={u.pw_name}", f"LOGNAME={u.pw_name}", "bash", str(workdir / "submit.sh"),
                    cwd=workdir)
    log(f"submit commands printed: {r.stdout.strip()!r} {r.stderr.strip()!r}")
    merge_msg = re.search(r"Submitted batch job (\d+)", r.stdout)
    assert merge_msg, f"no merge job id in {r.stdout!r}"
    merge_id = merge_msg.group(1)
    # the array job is the one the merge depends on
    dep = cluster.tasks(merge_id)[0]["Dependency"]
    array = re.fullmatch(r"afterok:(\d+)(_\*)?\(\w+\)", dep)
    assert array, f"merge job {merge_id} has dependency {dep!r}, not afterok:<array job>"
    log(f"array job {array.group(1)}, merge job {merge_id} (Dependency={dep})")
    return array.group(1), merge_id


def show_logs(folder: Path) -> None:
    for f in sorted(folder.iterdir()):
        log(f"--- {folder.parent.name}/logs/{f.name}\n{f.read_text(errors='replace').rstrip()}")


def comparable(results: dict) -> dict:
    """A results object without the one thing that differs between two gradings of the same
    notebooks: how long each took (``seconds`` of each submission)."""
    assert all("seconds" in r for r in results["submissions"])
    return {**results, "submissions": [{k: v for k, v in r.items() if k != "seconds"} for r in results["submissions"]]}


def test_the_guides_slurm_recipe_runs_and_a_killed_shard_stops_the_merge(cluster, tmp_path):
    # the unsharded run (by the test's user), same seed, same options as the recipe's
    jobs = cluster.root / "jobs"
    data = jobs / "ok"
    seed, *_ = prepared_recipe(jobs / "ok-job", data, cluster.user)
    whole = tmp_path / "whole"
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "autograder", "grade", str(data / "submissions"), "--assignment",
                        ASSIGNMENT, "--out", str(whole), "--seed", seed, "--no-progress"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=JOB_TIMEOUT)
    unsharded_s = time.monotonic() - start
    assert r.returncode == 0, r.stdout + r.stderr
    log(f"unsharded grade (seed {seed}): {unsharded_s:.1f} s")

    # 1. the recipe as written: array + merge, both succeed, the merge equals the unsharded run
    start = time.monotonic()
    array, merge_id = submit(cluster, jobs / "ok-job")
    tasks = cluster.wait_done(array, JOB_TIMEOUT)
    merge_task = cluster.wait_done(merge_id, JOB_TIMEOUT)[0]
    cluster_s = time.monotonic() - start
    show_logs(jobs / "ok-job" / "logs")
    assert [t["JobState"] for t in tasks] == ["COMPLETED"] * SHARDS, cluster.states(array)
    assert merge_task["JobState"] == "COMPLETED", cluster.states(merge_id)
    # they ran as the ordinary user: Slurm says so, and so do the files they wrote
    assert {t["UserId"].split("(")[0] for t in [*tasks, merge_task]} == {JOB_USER}, cluster.states(array)
    written = [data / "out" / f"shard-{i}" / "results.json" for i in range(SHARDS)] + [data / "out" / "final" / "grades.csv"]
    assert {os.stat(p).st_uid for p in written} == {cluster.user.pw_uid}
    log(f"cluster run (submit to merged): {cluster_s:.1f} s; unsharded: {unsharded_s:.1f} s")
    final = data / "out" / "final"
    assert (final / "grades.csv").read_text() == (whole / "grades.csv").read_text()
    merged, single = (json.loads((d / "results.json").read_text()) for d in (final, whole))
    assert comparable(merged) == comparable(single)
    with open(final / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == ["alice", "bob", "carol"]
    assert rows["alice"]["total"] == rows["alice"]["max_total"] and rows["carol"]["status"] == "invalid"

    # 2. again, and kill one array task while it runs: the merge must never start, and merging by
    # hand what finished must refuse and write nothing
    data = jobs / "killed"
    prepared_recipe(jobs / "killed-job", data, cluster.user)
    array, merge_id = submit(cluster, jobs / "killed-job")
    victim = f"{array}_1"
    end = time.monotonic() + JOB_TIMEOUT
    while not any(t.get("ArrayTaskId") == "1" and t["JobState"] == "RUNNING" for t in cluster.tasks(array)):
        assert time.monotonic() < end, cluster.states(array)
        time.sleep(0.5)
    time.sleep(3)  # let it get into grading
    cluster.run("scancel", victim)
    log(f"killed {victim} while RUNNING (scancel)")
    tasks = cluster.wait_done(array, JOB_TIMEOUT)
    states = {t["ArrayTaskId"]: t["JobState"] for t in tasks}
    assert states == {"0": "COMPLETED", "1": "CANCELLED", "2": "COMPLETED"}, cluster.states(array)
    time.sleep(3)  # a scheduler pass or two
    merge_task = cluster.tasks(merge_id)[0]
    log(f"merge job after the array ended: {cluster.states(merge_id)}")
    assert merge_task["JobState"] in ("PENDING", "CANCELLED") and merge_task["Reason"] == "DependencyNeverSatisfied", \
        cluster.states(merge_id)
    cluster.run("scancel", merge_id)
    log(f"merge job cancelled by the test: {cluster.states(merge_id)}")
    show_logs(jobs / "killed-job" / "logs")
    assert sorted(p.name for p in (data / "out").iterdir()) == ["shard-0", "shard-2"]
    # what an instructor does next by hand: the merge script's command on what is there
    r = subprocess.run(["bash", str(jobs / "killed-job" / "merge.sbatch")], capture_output=True, text=True,
                       env=cluster.env, timeout=300)
    log(f"merge by hand: exit {r.returncode}; stdout {r.stdout.strip()!r}; stderr {r.stderr.strip()!r}")
    assert r.returncode != 0
    assert f"shards missing: 1/{SHARDS}" in r.stderr
    assert not (data / "out" / "final" / "grades.csv").exists()
    assert not (data / "out" / "final" / "results.json").exists()
