"""``python -m benchmarks [--only PARTS] [--grading-n N] [--quick] [--budget PART=VALUE] [--root DIR]``.

Runs the parts of :mod:`benchmarks` (all by default), reports progress on stderr and prints the
machine line and one table on stdout. Exit status: 0 every budget holds, 1 a row is over its
budget (named on the last line), 2 a row could not run.

Examples::

    python -m benchmarks                              # everything, a few minutes
    python -m benchmarks --only sampler,grading --grading-n 40
    python -m benchmarks --only sampler --quick --budget sampler=1.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import em, flows, grading, mcmc, notebooks, sampler, vae
from benchmarks.table import FAILED, OVER, Row, exit_status, format_table, load_average, machine_line

PARTS = ("chapters", "exercises", "grading", "sampler", "em", "flows", "vae", "mcmc")
#: The budget of each part, overridable with --budget PART=VALUE (seconds — for vae, per 100 000 training examples; a ratio for the sampler, em and flows; for mcmc, one chain's ESS/s in % of 10 000 chains').
BUDGETS = {"chapters": notebooks.CHAPTER_BUDGET_S, "exercises": notebooks.SOLUTION_BUDGET_S,
           "grading": grading.CORE_SECONDS_PER_NOTEBOOK, "sampler": sampler.OVERHEAD_BUDGET, "em": em.RATIO_BUDGET,
           "flows": flows.LOG_DET_RATIO_BUDGET, "vae": vae.SECONDS_PER_100K_BUDGET,
           "mcmc": 100 / mcmc.SPEEDUP_BUDGET}
#: --quick: sizes small enough for a test (the notebooks cannot be shrunk; grade one tiny class).
QUICK_GRADING_N = 2


def parse_parts(text: str) -> list[str]:
    """``"sampler,chapters"`` → the parts in :data:`PARTS` order; argparse's error for unknown ones."""
    asked = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in asked if p not in PARTS]
    if not asked or unknown:
        raise argparse.ArgumentTypeError(f"--only takes parts among {', '.join(PARTS)} separated by commas "
                                         f"(got {text!r})")
    return [p for p in PARTS if p in asked]


def parse_budget(text: str) -> tuple[str, float]:
    """``"sampler=1.5"`` → ``("sampler", 1.5)``; argparse's error for anything else."""
    part, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or part.strip() not in PARTS or not number > 0:
        raise argparse.ArgumentTypeError(f"--budget takes PART=VALUE with PART among {', '.join(PARTS)} and "
                                         f"VALUE a positive number, e.g. chapters=120 (got {text!r})")
    return part.strip(), number


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="Time the course's chapters, solutions, grader and sampler against "
                                            "their budgets; print one table.")
    p.add_argument("--only", type=parse_parts, default=list(PARTS), metavar="PARTS",
                   help=f"comma-separated parts to run, among {','.join(PARTS)} (default: all)")
    p.add_argument("--grading-n", type=int, default=None, metavar="N",
                   help=f"notebooks in each synthetic class (default {grading.DEFAULT_N}; {QUICK_GRADING_N} with --quick)")
    p.add_argument("--grading-assignments", default=None, metavar="A1,A2",
                   help="assignments to grade (default: every assignment of solutions/)")
    p.add_argument("--quick", action="store_true",
                   help=f"tiny sizes, for a test: sampler T={sampler.QUICK_T} best of {sampler.QUICK_REPEATS}, "
                        f"classes of {QUICK_GRADING_N} (the notebooks are executed whole)")
    p.add_argument("--budget", type=parse_budget, action="append", default=[], metavar="PART=VALUE",
                   help="override a part's budget: " + ", ".join(f"{k}={v:g}" for k, v in BUDGETS.items())
                        + " (seconds — for vae, per 100 000 training examples; a ratio for the sampler, em and flows; for mcmc, one chain's ESS/s in % of 10 000 chains'); repeatable")
    p.add_argument("--root", type=Path, default=None, metavar="DIR",
                   help="the course whose chapters and solutions to execute (default: this repository)")
    return p


def run(parts: list[str], budgets: dict[str, float], root: Path, *, quick: bool = False,
        grading_n: int | None = None, grading_assignments: list[str] | None = None) -> list[Row]:
    """Every row of the asked parts, in :data:`PARTS` order; progress on stderr."""
    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows: list[Row] = []
    if "chapters" in parts:
        rows += notebooks.chapter_rows(root, budgets["chapters"], echo)
    if "exercises" in parts:
        rows += notebooks.solution_rows(root, budgets["exercises"], echo)
    if "grading" in parts:
        from autograder.course import assignments

        chosen = grading_assignments or assignments(root)
        n = grading_n if grading_n is not None else QUICK_GRADING_N if quick else grading.DEFAULT_N
        rows += grading.grading_rows(chosen, n, budget=budgets["grading"], echo=echo)
    if "sampler" in parts:
        echo("timing the diffusion sampler")
        T, repeats = (sampler.QUICK_T, sampler.QUICK_REPEATS) if quick else (sampler.DEFAULT_T, sampler.DEFAULT_REPEATS)
        rows += sampler.sampler_rows(T, repeats, budgets["sampler"])
    if "em" in parts:
        echo("timing EM against scikit-learn's GaussianMixture")
        n, repeats = (em.QUICK_N, em.QUICK_REPEATS) if quick else (em.DEFAULT_N, em.DEFAULT_REPEATS)
        rows += em.em_rows(n, repeats, budgets["em"], echo=echo)
    if "flows" in parts:
        echo("timing the flows' log-determinants and MAF/IAF passes")
        rows += flows.flows_rows(quick, echo, budget=budgets["flows"])
    if "vae" in parts:
        echo("timing VAE training on the digits; its held-out ELBO and IWAE-5000")
        rows += vae.vae_rows(quick, echo, budget=budgets["vae"])
    if "mcmc" in parts:
        echo("timing MH, MALA, ULA and Gibbs: effective samples per second, 1 to 10 000 chains at once")
        rows += mcmc.mcmc_rows(quick, echo, budget=budgets["mcmc"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit status of the module docstring."""
    args = _parser().parse_args(argv)
    if args.grading_n is not None and args.grading_n < 1:
        print("--grading-n must be at least 1", file=sys.stderr)
        return 2
    from autograder.course import REPO_ROOT

    root = (args.root or REPO_ROOT).resolve()
    budgets = {**BUDGETS, **dict(args.budget)}
    chosen = [a.strip() for a in args.grading_assignments.split(",") if a.strip()] if args.grading_assignments else None
    print(machine_line(), flush=True)
    rows = run(args.only, budgets, root, quick=args.quick, grading_n=args.grading_n, grading_assignments=chosen)
    if not rows:
        print("nothing to measure: no chapter, solution or assignment found under " + str(root), file=sys.stderr)
        return 2
    print()
    print(format_table(rows))
    print()
    print(f"at the end: {load_average()} (other jobs on the machine slow every row)")
    code = exit_status(rows)
    over = [r.item for r in rows if r.verdict == OVER]
    could_not = [r.item for r in rows if r.verdict == FAILED]
    if over:
        print("OVER budget: " + "; ".join(over))
    if could_not:
        print("could not run: " + "; ".join(could_not))
    if code == 0:
        print(f"every budget holds ({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return code


if __name__ == "__main__":
    sys.exit(main())
