"""The book's chapters: the table of contents is sound and every chapter is a notebook with its exercise.

Chapters are MyST markdown notebooks (book/<stem>.md). Each runs through nbval, converted with
jupytext, in tests/test_nbval.py; the seed sweep (tests/test_sweep.py) runs every page for eight
seeds and checks its claims hold for each; how long they take is the benchmark's (`make bench`,
budget 120 s per chapter), never a test's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from benchmarks import notebooks as benchmark_notebooks

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
NUMBERED_CHAPTER = benchmark_notebooks.NUMBERED_CHAPTER
# Numbered chapters whose exercise is not written yet. Keep it empty unless a chapter really
# ships before its exercise; chapter 1's is exercises/01-elbo/01-elbo.ipynb.
CHAPTERS_WITHOUT_EXERCISE: set[str] = set()


def toc_documents() -> list[str]:
    """Every document of _toc.yml (root first), as written there: e.g. ``book/01-elbo``."""
    return benchmark_notebooks.toc_documents(ROOT)


def source_of(document: str) -> Path:
    """The source file of a toc entry (``book/01-elbo`` -> ``book/01-elbo.md``)."""
    for suffix in (".md", ".ipynb"):
        path = ROOT / (document + suffix)
        if path.is_file():
            return path
    return ROOT / (document + ".md")


def is_notebook(path: Path) -> bool:
    """True for a MyST markdown notebook (jupytext front matter with a kernelspec) or an .ipynb."""
    if path.suffix == ".ipynb":
        return True
    text = path.read_text(encoding="utf-8")
    front = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    return bool(front) and "kernelspec" in (yaml.safe_load(front.group(1)) or {})


def numbered_chapters() -> list[str]:
    """Stems of the numbered chapters in the toc, e.g. ``["01-elbo"]``."""
    return [m.group(1) for doc in toc_documents() if (m := NUMBERED_CHAPTER.match(doc))]


def test_toc_lists_only_files_that_exist():
    documents = toc_documents()
    assert documents[0] == "book/intro", "the book opens with book/intro.md"
    missing = [doc for doc in documents if not source_of(doc).is_file()]
    assert not missing, f"_toc.yml lists documents with no book/<name>.md or .ipynb: {missing}"
    assert len(set(documents)) == len(documents), "a document is listed twice in _toc.yml"


def test_toc_pages_are_book_pages():
    for doc in toc_documents():
        assert doc.startswith("book/"), f"{doc}: only files under book/ may become pages"


@pytest.mark.parametrize("stem", numbered_chapters())
def test_chapter_is_a_myst_notebook(stem):
    path = BOOK / f"{stem}.md"
    assert path.is_file(), f"chapters are MyST markdown notebooks: expected {path.relative_to(ROOT)}"
    assert is_notebook(path), f"{path.name} needs jupytext front matter with a python3 kernelspec"


@pytest.mark.parametrize("stem", numbered_chapters())
def test_chapter_has_its_exercise(stem):
    if stem in CHAPTERS_WITHOUT_EXERCISE:
        pytest.skip(f"{stem} has no exercise yet")
    notebook = ROOT / "exercises" / stem / f"{stem}.ipynb"
    assert notebook.is_file(), (
        f"chapter {stem} needs its exercise at {notebook.relative_to(ROOT)} "
        f"(generated from solutions/{stem}/{stem}.ipynb by `make release`)"
    )


def _course_site():
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_site", ROOT / "book" / "_ext" / "course_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_extension_keeps_each_script_once_and_never_plotly_in_the_head():
    """Repeats go, plotly.js and the unread ipywidgets state go; the rest stays as it was, in order."""
    from sphinx.builders.html._assets import _JavaScript as Script

    site = _course_site()
    thebe = 'const THEBE_JS_URL = "x";'
    state = "application/vnd.jupyter.widget-state+json"
    scripts = [Script("_static/doctools.js", priority=200), Script("_static/plotly/plotly.min.js", priority=100),
               Script(None, body=thebe), Script("", body=thebe), Script("_static/doctools.js", priority=200),
               Script(None, body='{"state": {}}', type=state), Script("_static/sphinx-thebe.js", **{"async": "async"}),
               Script("_static/mathjax/tex-chtml.js", defer="defer")]
    kept = site.page_scripts(scripts)
    assert [(s.filename, s.attributes) for s in kept] == [
        ("_static/doctools.js", {}), (None, {"body": thebe}), ("_static/sphinx-thebe.js", {"async": "async"}),
        ("_static/mathjax/tex-chtml.js", {"defer": "defer"})]


def test_the_site_extension_hands_each_plotly_figure_to_the_loader():
    """Figures made by dgm.plotting draw through ``dgmPlotly(id, draw)``; the loader comes once,
    before the first figure, with the URL it was given; a page without a figure is unchanged."""
    import plotly.graph_objects as go

    from dgm.plotting import show_plotly

    site = _course_site()
    figures = [show_plotly(go.Figure(go.Scatter(x=[0, 1], y=[k, 2 * k]))) for k in (1, 2)]
    body = "<p>text</p>" + "".join(f"<div class='output'>{f.to_html()}</div><p>between</p>" for f in figures)
    page = site.figures_on_demand(body, "../_static/plotly/plotly.min.js")

    assert page.count("window.dgmPlotly = window.dgmPlotly ||") == 1
    assert page.index("window.dgmPlotly = window.dgmPlotly ||") < page.index(f'window.dgmPlotly("{figures[0].div_id}"')
    assert '})("../_static/plotly/plotly.min.js");' in page
    for figure in figures:
        call = f'window.dgmPlotly("{figure.div_id}", function () {{'
        assert page.count(call) == 1, f"figure {figure.div_id} is not drawn through the loader"
        assert page.index(f'id="{figure.div_id}"') < page.index(call), "the call must follow its div"
    assert page.count("Plotly.newPlot") == 2
    # every drawing call now sits inside a loader callback, none at the top level of a script
    for script in re.findall(r"<script[^>]*>(.*?)</script>", page, re.S):
        assert "Plotly.newPlot" not in script or script.startswith("window.dgmPlotly(")
    assert site.figures_on_demand(page, "../_static/plotly/plotly.min.js") == page, "not idempotent"
    assert site.figures_on_demand("<p>no figure</p>", "x.js") == "<p>no figure</p>"
