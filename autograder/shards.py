"""Grading a class as shards of one run (a cluster job): ``grade DIR --shard i/n`` grades every n-th
submission, from the i-th, and writes only its ``results.json``; :func:`merge` joins the shards'
results into one results object, after checking that they belong together.

:func:`results_object` (a run's records) and :func:`merge` (the shards' files) are where a results
object is made, so both pass its strings through :func:`autograder.results.clean_strings`: a
lone UTF-16 surrogate a student printed or put in a notebook becomes U+FFFD before any writer sees
it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from autograder.course import GradingError
from autograder.program import Program, tasks_table
from autograder.reports import RESULTS_FORMAT
from autograder.results import clean_strings
from autograder.sandbox import Limits
from autograder.submissions import Submission


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0 ≤ i < n) → (i, n)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise GradingError(f"--shard must look like i/n (0-based, e.g. 0/4); got {text!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 0 <= i < n:
        raise GradingError(f"--shard {text}: need 0 <= i < n")
    return i, n


def select_shard(subs: list[Submission], shard: tuple[int, int]) -> list[Submission]:
    """The submissions of shard ``i`` of ``n``: every n-th in the sorted order, from the i-th."""
    i, n = shard
    return [s for k, s in enumerate(sorted(subs, key=lambda s: s.student_id)) if k % n == i]


def results_object(program: Program, records: list[dict], run_seed: int, shard: tuple[int, int],
                   limits: Limits) -> dict:
    """The results object of a run (or of one shard), every string writable as UTF-8
    (:func:`~autograder.results.clean_strings`)."""
    records, _ = clean_strings(records)
    return {"format": RESULTS_FORMAT, "assignment": program.assignment, "seed": str(run_seed),
            "shard": list(shard), "limits": {"cell_timeout": limits.cell_timeout,
                                             "notebook_budget": limits.notebook_budget},
            "tasks": tasks_table(program), "submissions": records}


def merge(parts: list[Path]) -> dict:
    """One results object from the ``results.json`` of every shard; checks that the shards belong to
    one run of one assignment, that none is missing and that no student appears twice."""
    loaded = []
    for part in parts:
        path = Path(part) / "results.json" if Path(part).is_dir() else Path(part)
        try:
            data, _ = clean_strings(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise GradingError(f"{path} is incomplete or damaged ({err.msg} at line {err.lineno}): the shard "
                               "did not finish writing it (killed?); grade that shard again with the same "
                               "--seed, then merge") from err
        except (OSError, ValueError, RecursionError, MemoryError) as err:
            raise GradingError(f"cannot read shard results {path}: {type(err).__name__}: {str(err)[:300]}") from err
        if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
            raise GradingError(f"{path} is not a results file of this grader")
        if not (isinstance(data.get("shard"), list) and len(data["shard"]) == 2
                and all(isinstance(x, int) for x in data["shard"]) and isinstance(data.get("submissions"), list)
                and all(isinstance(r, dict) and isinstance(r.get("student_id"), str) for r in data["submissions"])):
            raise GradingError(f"{path} is a damaged results file: no shard i/n or no list of submissions with "
                               "student ids; grade that shard again")
        loaded.append((path, data))
    if not loaded:
        raise GradingError("nothing to merge")
    first = loaded[0][1]
    n = first["shard"][1]
    seen_shards: set[int] = set()
    students: dict[str, str] = {}
    for path, data in loaded:
        if data["assignment"] != first["assignment"] or data["shard"][1] != n or data["tasks"] != first["tasks"]:
            raise GradingError(f"{path} belongs to another assignment or another split than {loaded[0][0]}")
        if data.get("limits") != first.get("limits"):
            raise GradingError(f"{path} was graded with other limits ({data.get('limits')}) than {loaded[0][0]} "
                               f"({first.get('limits')}): grade every shard with the same options")
        i = data["shard"][0]
        if i in seen_shards:
            raise GradingError(f"shard {i}/{n} is given twice")
        seen_shards.add(i)
        for rec in data["submissions"]:
            if rec["student_id"] in students:
                raise GradingError(f"{rec['student_id']} appears in {students[rec['student_id']]} and {path}")
            students[rec["student_id"]] = str(path)
    missing = sorted(set(range(n)) - seen_shards)
    if missing:
        raise GradingError(f"shards missing: {', '.join(f'{i}/{n}' for i in missing)}")
    seeds = sorted({d["seed"] for _, d in loaded})
    records = sorted((r for _, d in loaded for r in d["submissions"]), key=lambda r: r["student_id"])
    return {**first, "seed": seeds[0] if len(seeds) == 1 else ",".join(seeds), "shard": [0, 1],
            "submissions": records}
