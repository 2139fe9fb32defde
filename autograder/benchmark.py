"""``python -m autograder.benchmark``: how fast does grading go on this machine, and does the number
of workers change any grade?

It builds a *synthetic class* of one assignment in a temporary folder, grades it once per entry
of ``--workers`` (each run into its own report folder, all with the same ``--seed``), prints one
row per run — workers, notebooks, wall seconds, notebooks per minute, speed-up over the first
row — with the machine it ran on and the count of each status (a synthetic class should be all
``graded``), and checks that every run gave every student the same status, total and per-task
scores. Then (unless ``--no-stock``) it grades the same class with stock ``nbgrader autograde`` —
one kernel per student, the checks inside it, no sandbox: the tool this grader replaces — and
prints it as one more row, a column of each row's speed over it, the ratio of notebooks per minute
of our fastest run to stock nbgrader's, and whether every student got the same points on every
automatically graded task from both.

The class (:func:`plan_class`, :func:`build_class`) is a fixed mix, drawn from ``--seed``:

* ``full`` (50 %): every answer cell from the solution;
* ``mutant`` (35 %): the solution with one or two answer cells replaced by known-wrong versions
  from ``mutants/<assignment>/`` (on different tasks);
* ``blank`` (10 %): the release as handed out, nothing answered;
* ``partial`` (5 %): some answer cells from the solution, the others left as the release's stubs.

Counts are rounded by largest remainder and, from four students up, every kind appears at least
once; student ids are ``student-000``, ``student-001``... in a shuffled order of kinds.

Exit status: 0 when every run gave identical scores (and stock nbgrader's points agree), 1 when
they differ, 2 when grading could not run (no sandbox, unknown assignment, a ``--keep`` folder that is not empty).

Example::

    python -m autograder.benchmark --n 40 --workers 1,2 --seed 7
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import random
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import REPO_ROOT
from autograder.grade import GradingError, GradingRun, default_workers, grade_folder
from autograder.samples import filled_release, load_mutants, solution_answers

#: The kinds of synthetic submission and the share of the class each gets, in table order.
MIX: dict[str, float] = {"full": 0.50, "mutant": 0.35, "blank": 0.10, "partial": 0.05}
DEFAULT_N = 200
DEFAULT_ASSIGNMENT = "01-elbo"
DEFAULT_SEED = 0
#: Classes at least this big get every kind of :data:`MIX` at least once.
EVERY_KIND_FROM = len(MIX)


@dataclass(frozen=True)
class Planned:
    """One synthetic student: what their notebook holds.

    ``mutants`` names the mutant files swapped in (kind ``mutant``); ``answered`` lists the answer
    cells taken from the solution (every one for ``full`` and ``mutant``, none for ``blank``, a
    strict, non-empty subset for ``partial``).
    """

    student_id: str
    kind: str
    mutants: tuple[str, ...] = ()
    answered: tuple[str, ...] = ()


def kind_counts(n: int) -> dict[str, int]:
    """How many students of each kind of :data:`MIX` a class of ``n`` holds: the shares rounded by
    largest remainder (summing to ``n``); when ``n`` ≥ :data:`EVERY_KIND_FROM`, a kind that would
    get none takes one from the largest."""
    if n < 0:
        raise ValueError(f"a class cannot have {n} students")
    exact = {kind: share * n for kind, share in MIX.items()}
    counts = {kind: math.floor(x) for kind, x in exact.items()}
    by_remainder = sorted(MIX, key=lambda k: (-(exact[k] - counts[k]), list(MIX).index(k)))
    for kind in by_remainder[: n - sum(counts.values())]:
        counts[kind] += 1
    if n >= EVERY_KIND_FROM:
        for kind in MIX:
            if counts[kind] == 0:
                largest = max(MIX, key=lambda k: counts[k])
                counts[largest] -= 1
                counts[kind] = 1
    return counts


def student_ids(n: int) -> list[str]:
    """``student-000`` ... ``student-<n-1>``, zero-padded to at least three digits (so they sort
    in number order, as the grader's shards do)."""
    width = max(3, len(str(max(n - 1, 0))))
    return [f"student-{i:0{width}d}" for i in range(n)]


def plan_class(n: int, assignment: str = DEFAULT_ASSIGNMENT, seed: int = DEFAULT_SEED,
               root: Path = REPO_ROOT) -> list[Planned]:
    """The synthetic class of ``n`` students of ``assignment``, in student-id order; the same
    ``seed`` always gives the same class. Raises ValueError when the assignment has no mutants
    (kind ``mutant`` needs them) or fewer than two answer cells (kind ``partial`` needs them)."""
    rng = random.Random(f"dgm-benchmark/{assignment}/{seed}")
    answer_ids = sorted(solution_answers(root, assignment))
    mutants = load_mutants(assignment, Path(root) / "mutants")
    by_task: dict[str, list[str]] = {}
    for m in mutants:
        by_task.setdefault(m.grade_id, []).append(m.name)
    counts = kind_counts(n)
    if counts["mutant"] and not by_task:
        raise ValueError(f"{assignment} has no mutants in mutants/{assignment}/")
    if counts["partial"] and len(answer_ids) < 2:
        raise ValueError(f"{assignment} has fewer than two answer cells: no partial answer is possible")
    kinds = [kind for kind in MIX for _ in range(counts[kind])]
    rng.shuffle(kinds)
    planned = []
    for sid, kind in zip(student_ids(n), kinds):
        if kind == "full":
            planned.append(Planned(sid, kind, answered=tuple(answer_ids)))
        elif kind == "mutant":
            tasks = rng.sample(sorted(by_task), k=min(rng.choice((1, 2)), len(by_task)))
            chosen = tuple(sorted(rng.choice(sorted(by_task[t])) for t in tasks))
            planned.append(Planned(sid, kind, mutants=chosen, answered=tuple(answer_ids)))
        elif kind == "blank":
            planned.append(Planned(sid, kind))
        else:
            some = rng.sample(answer_ids, k=rng.randint(1, len(answer_ids) - 1))
            planned.append(Planned(sid, kind, answered=tuple(sorted(some))))
    return planned


def write_planned(folder: Path, planned: list[Planned], assignment: str = DEFAULT_ASSIGNMENT,
                  root: Path = REPO_ROOT) -> list[Path]:
    """Write ``folder/<student_id>.ipynb`` for every planned student; returns the paths, in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    solution = solution_answers(root, assignment)
    mutants = {m.name: m for m in load_mutants(assignment, Path(root) / "mutants")}
    paths = []
    for p in planned:
        answers = {gid: solution[gid] for gid in p.answered}
        for name in p.mutants:
            answers[mutants[name].grade_id] = mutants[name].source
        path = folder / f"{p.student_id}.ipynb"
        nbformat.write(filled_release(answers, root, assignment), path)
        paths.append(path)
    return paths


def build_class(folder: Path, n: int = DEFAULT_N, assignment: str = DEFAULT_ASSIGNMENT,
                seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the synthetic class of :func:`plan_class` into ``folder`` as ``<student_id>.ipynb``
    files (the layout ``grade DIR`` reads); returns the paths in student-id order."""
    return write_planned(folder, plan_class(n, assignment, seed), assignment)


# --------------------------------------------------------------------------------------------
# Timing the grader
# --------------------------------------------------------------------------------------------


def machine_description() -> dict[str, object]:
    """The machine in a few facts: cores (``os.cpu_count``), cores this process may use (CPU
    affinity), the CPU model (``/proc/cpuinfo``, else ``platform.processor()``) and the memory in
    GiB (``/proc/meminfo``; None where unknown)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                model = value.strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 2**20, 1)  # kB → GiB
                break
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": os.cpu_count() or 1, "usable_cores": default_workers(),
            "cpu": model or platform.processor() or platform.machine() or "unknown", "memory_gib": memory}


def student_scores(run: GradingRun) -> dict[str, tuple]:
    """student id → (status, total, per-task scores as sorted pairs) of a grading run: what must
    not change between runs with the same seed."""
    return {r["student_id"]: (r["status"], r["total"], tuple(sorted(r["scores"].items())))
            for r in run.results["submissions"]}


def grade_with_nbgrader(submissions: Path, assignment: str, root: Path = REPO_ROOT) -> dict:
    """Grade the class in ``submissions`` (``<student>.ipynb``) with stock ``nbgrader autograde``:
    one kernel per student, one student at a time, the checks run inside the student's kernel, no
    sandbox — the tool the sandboxed grader replaces, on the same notebooks.

    It runs in a throwaway copy of the course (:func:`autograder.course.scratch_course`):
    ``generate_assignment`` records the source's cells (hidden tests included) in a fresh gradebook,
    the notebooks are copied to ``submitted/<student>/<a>/<a>.ipynb`` and ``autograde`` grades them
    with nbgrader's own preprocessors (its ``Execute``, not the course's budgeted one) and the
    course's kernel settings (:func:`autograder.nbgrader_config.course_config`).

    Returns ``seconds`` (the ``autograde`` call alone), ``notebooks``, ``per_minute`` and
    ``task_scores``: student → task → points, read from the gradebook (each task the sum of its
    test cells, :func:`autograder.program.task_of`). Raises :class:`GradingError` when nbgrader fails."""
    import shutil

    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde, GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    from autograder import nbgrader_config as cfg
    from autograder.course import scratch_course
    from autograder.program import task_of
    from autograder.validate import _environment

    notebooks = sorted(Path(submissions).glob("*.ipynb"))
    if not notebooks:
        raise GradingError(f"no notebooks in {submissions}")
    with scratch_course(root, [assignment], prefix="dgm-benchmark-nbgrader-") as scratch:
        config = cfg.course_config(scratch)
        config.Autograde.pop("autograde_preprocessors", None)  # nbgrader's own list: stock Execute

        def coursedir() -> CourseDirectory:
            folder = CourseDirectory(config=config)
            folder.assignment_id = assignment
            return folder

        try:
            GenerateAssignment(coursedir=coursedir(), config=config).start()
        except Exception as err:  # noqa: BLE001 - nbgrader raises its own exceptions and others
            raise GradingError(f"nbgrader generate_assignment failed: {err}") from err
        for nb in notebooks:
            target = scratch / cfg.SUBMITTED_DIR / nb.stem / assignment / f"{assignment}.ipynb"
            target.parent.mkdir(parents=True)
            shutil.copyfile(nb, target)
        grader = Autograde(coursedir=coursedir(), config=config)
        grader.log.setLevel(logging.ERROR)
        start = time.perf_counter()
        try:
            with _environment(cfg.KERNEL_ENV), warnings.catch_warnings():
                warnings.filterwarnings("ignore", module=r"nbgrader\.")  # SQLAlchemy's, from its gradebook
                grader.start()
        except Exception as err:  # noqa: BLE001
            raise GradingError(f"nbgrader autograde failed: {err}") from err
        seconds = time.perf_counter() - start
        scores: dict[str, dict[str, float]] = {}
        with Gradebook(cfg.gradebook_url(scratch), cfg.COURSE_ID) as gb:
            for nb in notebooks:
                tasks: dict[str, float] = {}
                try:
                    graded = gb.find_submission_notebook(assignment, assignment, nb.stem)
                except Exception:  # noqa: BLE001 - not graded at all: no scores (every task then counts 0)
                    scores[nb.stem] = tasks
                    continue
                for grade in graded.grades:
                    if grade.cell_type == "code":  # test cells (written answers are graded by hand)
                        task = task_of(grade.name)
                        tasks[task] = tasks.get(task, 0.0) + float(grade.score or 0.0)
                scores[nb.stem] = tasks
    return {"seconds": seconds, "notebooks": len(notebooks),
            "per_minute": 60.0 * len(notebooks) / seconds if seconds > 0 else float("inf"), "task_scores": scores}


def run_benchmark(n: int = DEFAULT_N, assignment: str = DEFAULT_ASSIGNMENT, workers: list[int] | None = None,
                  seed: int = DEFAULT_SEED, keep: Path | None = None,
                  echo: Callable[[str], None] | None = None, stock: bool = False) -> list[dict]:
    """Build the synthetic class and grade it once per entry of ``workers`` (default ``[1, N]``,
    N the usable cores), every run with grading seed ``seed``; with ``stock``, grade it once more
    with stock ``nbgrader autograde`` (:func:`grade_with_nbgrader`), the last row.

    Returns one dict per run, in order: ``workers``, ``notebooks`` (submissions graded),
    ``seconds`` (wall clock of the whole ``grade_folder`` call: program, sandboxes, reports),
    ``per_minute`` (notebooks per minute), ``speedup`` (the first run's seconds over this one's),
    ``scores`` (:func:`student_scores`), ``statuses`` (status → number of students) and ``out``
    (the report folder, or None when it was in a temporary folder, now removed), ``grader``
    (``"ours"``). The stock row has ``grader`` ``"nbgrader"``, ``workers`` 1, ``notebooks``,
    ``seconds``, ``per_minute``, ``speedup`` (the first row's seconds over its own) and
    ``disagree``: the students whose points on some automatically graded task differ from the first
    run's. With ``keep`` the class goes to ``keep/submissions`` and each run's reports to
    ``keep/run-<k>-workers-<w>``; ``keep`` must be empty or absent. ``echo`` receives a line as
    each step starts (nothing when None). Raises :class:`GradingError`.
    """
    workers = list(workers) if workers else default_worker_list()
    if not workers or any(w < 1 for w in workers):
        raise GradingError(f"every worker count must be at least 1 (got {workers})")
    say = echo or (lambda line: None)
    if keep is not None:
        keep = Path(keep)
        if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
            raise GradingError(f"--keep {keep}: give a folder that is empty or does not exist yet")
        keep.mkdir(parents=True, exist_ok=True)
        return _run_in(keep, n, assignment, workers, seed, say, kept=True, stock=stock)
    with tempfile.TemporaryDirectory(prefix="dgm-benchmark-") as tmp:
        return _run_in(Path(tmp), n, assignment, workers, seed, say, kept=False, stock=stock)


def _run_in(base: Path, n: int, assignment: str, workers: list[int], seed: int,
            say: Callable[[str], None], kept: bool, stock: bool = False) -> list[dict]:
    """:func:`run_benchmark` with every file under ``base``."""
    start = time.perf_counter()
    try:
        planned = plan_class(n, assignment, seed)
    except (ValueError, FileNotFoundError) as err:
        raise GradingError(f"cannot build a class of {assignment}: {err}") from err
    counts = Counter(p.kind for p in planned)
    say(f"building a class of {n} submission(s) of {assignment} (seed {seed}): "
        + ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in MIX))
    write_planned(base / "submissions", planned, assignment)
    say(f"built in {time.perf_counter() - start:.1f} s")
    rows: list[dict] = []
    for k, w in enumerate(workers, 1):
        out = base / f"run-{k}-workers-{w}"
        say(f"run {k} of {len(workers)}: grading with {w} worker(s) into {out if kept else 'a temporary folder'}")
        t0 = time.perf_counter()
        run = grade_folder(base / "submissions", assignment, out, progress=False, workers=w, seed=seed)
        seconds = time.perf_counter() - t0
        notebooks = len(run.results["submissions"])
        rows.append({"workers": w, "notebooks": notebooks, "seconds": seconds,
                     "per_minute": 60.0 * notebooks / seconds if seconds > 0 else float("inf"),
                     "speedup": (rows[0]["seconds"] / seconds) if rows and seconds > 0 else 1.0,
                     "scores": student_scores(run),
                     "statuses": dict(Counter(r["status"] for r in run.results["submissions"])),
                     "out": out if kept else None, "grader": "ours"})
        say(f"  done in {seconds:.1f} s")
    if stock:
        say("stock nbgrader autograde: one kernel per student, checks in the kernel, no sandbox")
        result = grade_with_nbgrader(base / "submissions", assignment)
        rows.append({"grader": "nbgrader", "workers": 1, "notebooks": result["notebooks"],
                     "seconds": result["seconds"], "per_minute": result["per_minute"],
                     "speedup": rows[0]["seconds"] / result["seconds"] if result["seconds"] > 0 else 1.0,
                     "disagree": _disagreeing(rows[0]["scores"], result["task_scores"], assignment)})
        say(f"  done in {result['seconds']:.1f} s")
    return rows


def _disagreeing(ours: dict[str, tuple], stock: dict[str, dict[str, float]], assignment: str,
                 root: Path = REPO_ROOT) -> list[str]:
    """Students whose points on an automatically graded task differ between our run (``ours``:
    :func:`student_scores`) and stock nbgrader's (``stock``: student → task → points; a task it did
    not grade counts 0)."""
    from autograder.program import build_program, tasks_table

    automatic = [t["name"] for t in tasks_table(build_program(root, assignment)) if not t["manual"]]
    differ = []
    for student in sorted(set(ours) | set(stock)):
        if student not in ours or student not in stock:
            differ.append(student)
            continue
        points = dict(ours[student][2])
        if any(abs((points.get(task) or 0.0) - stock[student].get(task, 0.0)) > 1e-9 for task in automatic):
            differ.append(student)
    return differ


def ours(rows: list[dict]) -> list[dict]:
    """The rows of our grader's runs (without the stock nbgrader row)."""
    return [r for r in rows if r.get("grader", "ours") == "ours"]


def default_worker_list() -> list[int]:
    """``[1, N]`` with N the usable cores; ``[1]`` on a single core."""
    n = default_workers()
    return [1] if n == 1 else [1, n]


def scores_agree(rows: list[dict]) -> bool:
    """Whether every run of our grader in ``rows`` gave every student the same status, total and
    task scores."""
    rows = ours(rows)
    return all(r["scores"] == rows[0]["scores"] for r in rows[1:])


def differing_students(rows: list[dict]) -> list[str]:
    """Students whose status, total or task scores differ between some runs of our grader in ``rows``."""
    rows = ours(rows)
    students = sorted({s for r in rows for s in r["scores"]})
    return [s for s in students if len({r["scores"].get(s) for r in rows}) > 1]


def format_statuses(rows: list[dict]) -> str:
    """One line counting the students of each status, per run when the runs differ. A synthetic
    class should be all ``graded``; anything else (every student ``crashed``: the sandbox cannot
    start here) makes the times meaningless."""
    rows = ours(rows)

    def tally(statuses: dict[str, int]) -> str:
        return ", ".join(f"{name} {count}" for name, count in sorted(statuses.items()))

    if all(r["statuses"] == rows[0]["statuses"] for r in rows[1:]):
        return f"statuses (every run): {tally(rows[0]['statuses'])}"
    return "statuses: " + "; ".join(f"run {k}: {tally(r['statuses'])}" for k, r in enumerate(rows, 1))


def format_table(rows: list[dict]) -> str:
    """The runs as a plain-text table: grader, workers, notebooks, wall seconds, notebooks per
    minute, speed-up over the first row and, when a stock nbgrader row is there, each row's speed
    over stock nbgrader's (its seconds over the row's)."""
    stock = next((r for r in rows if r.get("grader") == "nbgrader"), None)
    head = f"{'grader':<18}  {'workers':>7}  {'notebooks':>9}  {'wall s':>8}  {'nb/min':>7}  {'speed-up':>8}"
    lines = [head + (f"  {'vs nbgrader':>11}" if stock else "")]
    for r in rows:
        name = "nbgrader autograde" if r.get("grader") == "nbgrader" else "ours (sandboxed)"
        line = (f"{name:<18}  {r['workers']:>7}  {r['notebooks']:>9}  {r['seconds']:>8.1f}  {r['per_minute']:>7.1f}  "
                f"{r['speedup']:>7.2f}x")
        if stock:
            line += f"  {stock['seconds'] / r['seconds'] if r['seconds'] > 0 else float('inf'):>10.2f}x"
        lines.append(line)
    return "\n".join(lines)


def format_comparison(rows: list[dict]) -> str:
    """Two lines comparing our fastest run with stock nbgrader's: notebooks per minute of each and
    their ratio, and whether every student got the same points on every automatically graded task."""
    stock = next(r for r in rows if r.get("grader") == "nbgrader")
    best = max(ours(rows), key=lambda r: r["per_minute"])
    ratio = best["per_minute"] / stock["per_minute"] if stock["per_minute"] > 0 else float("inf")
    lines = [f"ours with {best['workers']} worker(s): {best['per_minute']:.1f} notebooks/min; stock nbgrader "
             f"autograde: {stock['per_minute']:.1f} notebooks/min; ratio {ratio:.2f}x"]
    bad = stock["disagree"]
    if not bad:
        lines.append(f"verdicts: every student's points on every automatically graded task are the same as "
                     f"stock nbgrader's ({stock['notebooks']} students)")
    else:
        lines.append(f"verdicts: DIFFER from stock nbgrader's for {len(bad)} of {stock['notebooks']} students: "
                     + ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else ""))
    return "\n".join(lines)


def format_machine(machine: dict[str, object]) -> str:
    """One line naming the machine of :func:`machine_description`."""
    memory = "" if machine.get("memory_gib") is None else f", {machine['memory_gib']:g} GiB memory"
    return (f"machine: {machine['cores']} cores ({machine['usable_cores']} usable by this process), "
            f"{machine['cpu']}{memory}, Python {platform.python_version()}")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_workers(text: str) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]``; argparse's error for anything else."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--workers takes whole numbers separated by commas, e.g. 1,2 (got {text!r})") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"--workers needs at least one count, each at least 1 (got {text!r})")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder.benchmark",
                                description="Time the grader on a synthetic class, once per worker count.")
    p.add_argument("--n", type=int, default=DEFAULT_N, help="submissions in the class (default %(default)s)")
    p.add_argument("--assignment", default=DEFAULT_ASSIGNMENT, help="assignment id (default %(default)s)")
    p.add_argument("--workers", type=parse_workers, default=None, metavar="W1,W2,...",
                   help="worker counts, one grading run each (default: 1 and the number of usable cores)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="seed of the class's mix and of the hidden checks, the same for every run "
                        "(default %(default)s)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="keep the class (DIR/submissions) and every run's reports in DIR (empty or new)")
    p.add_argument("--no-stock", dest="stock", action="store_false",
                   help="skip grading the class with stock `nbgrader autograde` for comparison")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; the exit status of the module docstring."""
    args = _parser().parse_args(argv)
    if args.n < 1:
        print("--n must be at least 1", file=sys.stderr)
        return 2
    machine = machine_description()
    print(format_machine(machine), flush=True)
    try:
        rows = run_benchmark(args.n, args.assignment, args.workers, args.seed, keep=args.keep,
                             echo=lambda line: print(line, flush=True), stock=args.stock)
    except GradingError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 2
    print()
    print(format_table(rows))
    print()
    print(format_statuses(rows))
    students = len(rows[0]["scores"])
    if scores_agree(rows):
        print(f"scores: identical for all {students} students in every run (seed {args.seed})")
        code = 0
    else:
        bad = differing_students(rows)
        print(f"scores: DIFFER between runs for {len(bad)} of {students} students (seed {args.seed}): "
              + ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else ""))
        code = 1
    stock = next((r for r in rows if r.get("grader") == "nbgrader"), None)
    if stock is not None:
        print(format_comparison(rows))
        if stock["disagree"]:
            code = 1
    if args.keep is not None:
        print(f"class and reports kept in {args.keep}")
    return code


if __name__ == "__main__":
    sys.exit(main())
