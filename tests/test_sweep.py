"""The chapters' claims hold for every seed of a sweep, not for one lucky run (issue 9).

A chapter may only assert or state what holds on any CPU for every member of a seed sweep. Every
random number a chapter draws comes from ``dgm.device.manual_seed`` / ``dgm.device.sweep_seed``;
with ``DGM_SEED_SWEEP=k`` each of its seeds ``s`` becomes ``s + k * SEED_STRIDE``. The slow test
below executes every notebook page of the book, in the configuration the website uses (same
source, fresh ``python3`` kernel, cwd ``book/``), for k = 0..7; the chapter's ``assert`` lines are
its claims, so a member for which one breaks fails the test and names the cell.

Machines differ in floating-point details as well as seeds: on a CPU with AVX-512, the odd members
run torch's AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``) and MKL's AVX2 code path
(``MKL_ENABLE_INSTRUCTIONS=AVX2``), so the sweep also covers the rounding of a CPU without AVX-512
(the kind of machine on which a fixed-seed claim once broke).

Values a chapter passes to ``dgm.device.record`` are written, per member, under
``_build/sweep/<page>/k<k>.jsonl``; at the end of the session the table of every recorded value
across the sweep (minimum, maximum, each member) is printed and written to
``_build/sweep/table.md``.

The fast tests make sure no chapter draws a random number the sweep cannot reach.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from test_book import ROOT, is_notebook, source_of, toc_documents

SWEEP = range(8)
SWEEP_DIR = ROOT / "_build" / "sweep"
#: The record files the sweep wrote in this pytest session (the table shows only these).
WRITTEN: list[Path] = []

#: Calls that draw random numbers: each must be given an explicit ``generator=``. torch's
#: functions count as ``torch.<name>(...)`` (``normal`` alone may be a page's own helper); the
#: methods (a distribution's ``sample``, a tensor's ``normal_``) count on any object.
TORCH_RANDOM = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
                "bernoulli", "multinomial", "poisson"}
RANDOM_METHODS = {"sample", "rsample", "sample_n", "uniform_", "normal_", "exponential_", "random_", "cauchy_",
                  "log_normal_", "geometric_", "bernoulli_"}
#: Ways to reach a random-number generator that the sweep cannot reseed.
FORBIDDEN_PATTERNS = {
    r"\btorch\.Generator\s*\(": "a torch.Generator made by hand (use dgm.device.manual_seed(s))",
    r"\btorch\.manual_seed\s*\(\s*\d": "torch.manual_seed with a literal (use torch.manual_seed(sweep_seed(s)))",
    r"\bnp\.random\b|\bnumpy\.random\b": "numpy's random module (draw with torch and a dgm.device generator)",
    r"^\s*(import random|from random import)": "python's random module",
    r"random_state\s*=\s*\d": "a literal random_state (use random_state=sweep_seed(s))",
}


def notebook_pages() -> list[str]:
    return [doc for doc in toc_documents() if source_of(doc).is_file() and is_notebook(source_of(doc))]


def executed_pages() -> list[str]:
    """The notebook pages with code to run (the notation and common-slips pages have none: nbval would
    collect nothing from them, and they state no claim a seed could break)."""
    return [doc for doc in notebook_pages() if code_cells(source_of(doc))]


def test_every_numbered_chapter_is_executed_by_the_sweep():
    chapters = [doc for doc in toc_documents() if re.match(r"book/\d\d-", doc)]
    assert chapters and set(chapters) <= set(executed_pages()), (chapters, executed_pages())


def code_cells(path: Path) -> list[tuple[int, str]]:
    """``(index, source)`` of every code cell, IPython magics and shell lines blanked out."""
    import jupytext

    notebook = jupytext.read(path)
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines()]
        cells.append((index, "\n".join(lines)))
    return cells


def random_calls_without_generator(source: str) -> list[str]:
    """Calls of :data:`RANDOM_CALLS` with no ``generator=`` keyword (they use a global RNG)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            on_torch = isinstance(func.value, ast.Name) and func.value.id == "torch"
            draws = func.attr in RANDOM_METHODS or (on_torch and func.attr in TORCH_RANDOM)
        else:
            draws = getattr(func, "id", None) in {"rand", "randn", "randint", "randperm"}
        if draws and not any(k.arg == "generator" for k in node.keywords):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_the_rules_catch_what_they_should():
    assert random_calls_without_generator("x = torch.randn(3)\ny = torch.randn(3, generator=g)") == [
        "line 1: torch.randn(3)"]
    assert random_calls_without_generator("q.sample((5,))\nlinear_gaussian.sample(5, W, generator=g)") == [
        "line 1: q.sample((5,))"]
    assert random_calls_without_generator("torch.empty(3).normal_()")
    assert random_calls_without_generator("torch.normal(0.0, 1.0, (3,))")
    assert not random_calls_without_generator("def normal(m, s): ...\nnormal(0.0, 1.0)")
    hits = [p for p in FORBIDDEN_PATTERNS if re.search(p, "g = torch.Generator().manual_seed(3)", re.M)]
    assert hits == [r"\btorch\.Generator\s*\("]
    assert any(re.search(p, "torch.manual_seed(9)", re.M) for p in FORBIDDEN_PATTERNS)
    assert not any(re.search(p, "torch.manual_seed(sweep_seed(9))", re.M) for p in FORBIDDEN_PATTERNS)


@pytest.mark.parametrize("document", notebook_pages())
def test_every_random_number_of_a_page_comes_from_a_sweepable_seed(document):
    path = source_of(document)
    problems = []
    for index, source in code_cells(path):
        for pattern, why in FORBIDDEN_PATTERNS.items():
            for match in re.finditer(pattern, source, re.M):
                line = source[: match.start()].count("\n") + 1
                problems.append(f"cell {index}, line {line}: {why}")
        problems += [f"cell {index}, {call}: draws from torch's global RNG (pass generator=manual_seed(s))"
                     for call in random_calls_without_generator(source)]
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def _cpu_has(flag: str) -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(rf"^flags\s*:.*\b{flag}\b", text, re.M) is not None


def sweep_environment(k: int, record_file: Path) -> dict[str, str]:
    """What member ``k`` of the sweep sets in the kernel's environment."""
    env = {"DGM_SEED_SWEEP": str(k), "DGM_SWEEP_RECORD": str(record_file)}
    if k % 2 == 1 and _cpu_has("avx512f"):
        env.update(ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("k", SWEEP)
@pytest.mark.parametrize("document", executed_pages())
def test_chapter_claims_hold_for_every_seed_of_the_sweep(document, k):
    """Member k of the sweep executes the chapter through nbval (tests/test_nbval.py's runner, issue 19);
    member 0 is the page as the website runs it. A broken claim fails its cell, named the nbval way, with
    the line of the page it comes from and the member."""
    from test_nbval import assert_nbval_passes, chapter_notebook, myst_line, run_nbval

    path = source_of(document)
    stem = path.stem
    record_file = SWEEP_DIR / Path(document).name / f"k{k}.jsonl"
    record_file.parent.mkdir(parents=True, exist_ok=True)
    record_file.unlink(missing_ok=True)
    WRITTEN.append(record_file)
    env = sweep_environment(k, record_file)
    shown = {n: v for n, v in env.items() if n != "DGM_SWEEP_RECORD"}
    notebook = chapter_notebook(stem)
    try:
        result = run_nbval(notebook, env=env)
        assert_nbval_passes(result, notebook,
                            lambda n: f"{myst_line(stem, notebook, n)} — fails for sweep member {k} ({shown})")
    finally:
        notebook.unlink(missing_ok=True)


def sweep_table(folder: Path = SWEEP_DIR, files: list[Path] | None = None) -> str:
    """A Markdown table of recorded values: one row per (page, name), one column per member.

    ``files``: the record files to read (default: every ``<folder>/<page>/k*.jsonl``).
    """
    if files is None:
        files = [f for page_dir in sorted(p for p in folder.glob("*") if p.is_dir())
                 for f in sorted(page_dir.glob("k*.jsonl"))]
    rows = {}
    for file in files:
        if not file.is_file():
            continue
        for line in file.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            rows.setdefault((file.parent.name, item["name"]), {})[item["sweep"]] = item["value"]
    if not rows:
        return ""
    members = sorted({k for values in rows.values() for k in values})

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    head = "| page | value | min | max | " + " | ".join(f"k={k}" for k in members) + " |"
    lines = [head, "|" + "---|" * (4 + len(members))]
    for (page, name), values in rows.items():
        numbers = [v for v in values.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        lo = fmt(min(numbers)) if numbers else ""
        hi = fmt(max(numbers)) if numbers else ""
        cells = " | ".join(fmt(values[k]) if k in values else "" for k in members)
        lines.append(f"| {page} | {name} | {lo} | {hi} | {cells} |")
    return "\n".join(lines)


def test_sweep_table_of_recorded_values(tmp_path):
    (tmp_path / "01-x").mkdir()
    (tmp_path / "01-x" / "k0.jsonl").write_text(json.dumps({"name": "acc", "value": 0.9, "sweep": 0}) + "\n")
    (tmp_path / "01-x" / "k1.jsonl").write_text(json.dumps({"name": "acc", "value": 0.95, "sweep": 1}) + "\n")
    table = sweep_table(tmp_path).splitlines()
    assert table[0] == "| page | value | min | max | k=0 | k=1 |"
    assert table[2] == "| 01-x | acc | 0.9 | 0.95 | 0.9 | 0.95 |"
    assert sweep_table(tmp_path / "nothing") == ""


def test_record_writes_one_line_per_call(tmp_path, monkeypatch):
    from dgm.device import record

    target = tmp_path / "r.jsonl"
    monkeypatch.delenv("DGM_SWEEP_RECORD", raising=False)
    assert record("a", 1.5) == 1.5 and not target.exists()  # outside a sweep: nothing written
    monkeypatch.setenv("DGM_SWEEP_RECORD", str(target))
    monkeypatch.setenv("DGM_SEED_SWEEP", "3")
    import torch

    assert record("b", torch.tensor(2.0)) == 2.0
    record("c", float("inf"))
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert lines == [{"name": "b", "value": 2.0, "sweep": 3}, {"name": "c", "value": "inf", "sweep": 3}]
    with pytest.raises(ValueError, match="single number"):
        record("d", torch.zeros(2))
    with pytest.raises(TypeError, match="name"):
        record("", 1)


def test_sweep_members_draw_different_numbers(monkeypatch):
    import torch

    from dgm.device import SEED_STRIDE, manual_seed, sweep_seed

    monkeypatch.delenv("DGM_SEED_SWEEP", raising=False)
    page = torch.randn(4, generator=manual_seed(5))
    assert torch.equal(page, torch.randn(4, generator=torch.Generator().manual_seed(5)))
    monkeypatch.setenv("DGM_SEED_SWEEP", "2")
    assert sweep_seed(5) == 5 + 2 * SEED_STRIDE
    member = torch.randn(4, generator=manual_seed(5))
    assert torch.equal(member, torch.randn(4, generator=torch.Generator().manual_seed(5 + 2 * SEED_STRIDE)))
    assert not torch.equal(page, member)
    for bad in ("-1", "x"):
        monkeypatch.setenv("DGM_SEED_SWEEP", bad)
        with pytest.raises(ValueError, match="DGM_SEED_SWEEP"):
            sweep_seed(1)
