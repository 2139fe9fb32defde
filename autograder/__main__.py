"""Command line of the grader: ``python -m autograder {release,check-release,grade,merge,formgrader,validate,make-samples}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder import nbgrader_config as cfg
from autograder.course import REPO_ROOT


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    p.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("release", help="regenerate exercises/<a>/ from solutions/<a>/ (all when none given), "
                                       "with their install cells, and notebooks/<a>.ipynb from book/<a>.md")
    r.add_argument("assignment", nargs="*")

    c = sub.add_parser("check-release", help="exit 1 when exercises/, notebooks/ or an install cell differs "
                                             "from a fresh release")
    c.add_argument("assignment", nargs="*")

    g = sub.add_parser("grade", help="grade a folder of submissions")
    g.add_argument("dir", type=Path, help="<student_id>.ipynb files, or <student_id>/<a>/<a>.ipynb")
    g.add_argument("--assignment", default=None, help="assignment id (default: the only one)")
    g.add_argument("--out", type=Path, default=None, help="report folder (default: autograder/reports)")
    g.add_argument("--timeout-per-cell", type=float, default=cfg.CELL_TIMEOUT_S, metavar="S",
                   help="seconds per cell and per task's checks (default %(default)s)")
    g.add_argument("--notebook-budget", type=float, default=cfg.NOTEBOOK_BUDGET_S, metavar="S",
                   help="seconds per notebook, restarts included (default %(default)s)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel sandboxes (default: one per core)")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="grade only shard I of N (0-based; e.g. a Kubernetes indexed Job's "
                        "$JOB_COMPLETION_INDEX) and write OUT/results.json for `merge`")
    g.add_argument("--seed", type=int, default=None, help="seed of the hidden checks' inputs (default: random; "
                                                          "recorded in results.json)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    mg = sub.add_parser("merge", help="join the results.json of every shard into the full reports")
    mg.add_argument("out", type=Path, help="report folder")
    mg.add_argument("parts", type=Path, nargs="+", help="the shards' folders (or results.json files)")

    f = sub.add_parser("formgrader", help="write a graded folder into nbgrader's gradebook, to grade the written "
                                          "answers in formgrader and export every grade")
    f.add_argument("out", type=Path, help="report folder that `grade` or `merge` wrote (holding results.json)")
    f.add_argument("--course", type=Path, default=None, metavar="DIR",
                   help="the nbgrader course folder to write or update (default: OUT/nbgrader)")

    v = sub.add_parser("validate", help="run a notebook's tests, print pass/fail per test; exit 1 on failure")
    v.add_argument("notebook", type=Path)
    v.add_argument("--timeout-per-cell", type=int, default=cfg.CELL_TIMEOUT_S, metavar="S")

    m = sub.add_parser("make-samples", help="regenerate autograder/samples/ from the release and solution")
    m.add_argument("--check", action="store_true", help="exit 1 when the committed samples are stale")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.root.resolve()
    if args.command == "release":
        from autograder.release import ReleaseError, release

        try:
            done = release(root, args.assignment or None)
        except ReleaseError as err:
            print(f"release failed: {err}", file=sys.stderr)
            return 2
        for a in done:
            print(f"released {cfg.RELEASE_DIR}/{a}/{a}.ipynb")
        from autograder.launch import CHAPTER_NOTEBOOK_DIR, chapter_stems

        for stem in chapter_stems(root, args.assignment or None):
            print(f"wrote {CHAPTER_NOTEBOOK_DIR}/{stem}.ipynb")
        return 0
    if args.command == "check-release":
        from autograder.release import ReleaseError, stale_release_files

        try:
            stale = stale_release_files(root, args.assignment or None)
        except ReleaseError as err:
            print(f"check-release failed: {err}", file=sys.stderr)
            return 2
        if stale:
            print("exercises/ or notebooks/ is not what `release` makes from solutions/, book/ and "
                  "_config.yml — run `make release`:")
            for name in stale:
                print(f"  {name}")
            return 1
        print("exercises/ and notebooks/ are up to date with solutions/, book/ and _config.yml")
        return 0
    if args.command == "grade":
        from autograder.grade import GradingError, grade_folder

        try:
            run = grade_folder(args.dir, args.assignment, args.out, cell_timeout=args.timeout_per_cell,
                               notebook_budget=args.notebook_budget, root=root,
                               progress=not args.no_progress, workers=args.workers, shard=args.shard,
                               seed=args.seed)
        except GradingError as err:
            print(f"grading failed: {err}", file=sys.stderr)
            return 2
        print(run.summary)
        return 0
    if args.command == "merge":
        from autograder.grade import GradingError, merge_folders

        try:
            run = merge_folders(args.parts, args.out, root=root)
        except GradingError as err:
            print(f"merge failed: {err}", file=sys.stderr)
            return 2
        print(run.summary)
        return 0
    if args.command == "formgrader":
        from autograder.course import GradingError
        from autograder.gradebook import export_course

        try:
            done = export_course(args.out, args.course, root=root)
        except GradingError as err:
            print(f"formgrader export failed: {err}", file=sys.stderr)
            return 2
        print(done.summary)
        return 0
    if args.command == "validate":
        from autograder.validate import validate_notebook

        return validate_notebook(args.notebook, cell_timeout=args.timeout_per_cell)
    if args.command == "make-samples":
        from autograder.samples import make_samples, stale_samples

        if args.check:
            stale = stale_samples(root)
            for name in stale:
                print(f"stale: {name}")
            return 1 if stale else 0
        for path in make_samples(root):
            print(f"wrote {path.relative_to(root)}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
