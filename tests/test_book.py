"""The book's chapters: the table of contents is sound and every chapter is a notebook with its exercise.

Chapters are MyST markdown notebooks (book/<stem>.md). Executing them is the seed sweep's job
(tests/test_sweep.py runs every page for eight seeds and checks its claims hold for each); how long
they take is the benchmark's (`make bench`, budget 120 s per chapter), never a test's.
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


def test_the_site_extension_keeps_each_script_once_and_plotly_only_with_a_figure():
    site = _course_site()

    class Script:
        def __init__(self, filename, **attributes):
            self.filename, self.attributes = filename, attributes

    thebe = 'const THEBE_JS_URL = "x";'
    scripts = [Script("_static/doctools.js"), Script("_static/plotly/plotly.min.js"), Script(None, body=thebe),
               Script("", body=thebe), Script("_static/doctools.js"), Script("_static/mathjax/tex-chtml.js", defer="defer")]
    kept = site.page_scripts(scripts, body="<p>no figure here</p>")
    assert [(s.filename, s.attributes) for s in kept] == [
        ("_static/doctools.js", {}), (None, {"body": thebe}), ("_static/mathjax/tex-chtml.js", {"defer": "defer"})]
    with_figure = site.page_scripts(scripts, body='<div class="plotly-graph-div"></div><script>Plotly.newPlot(...)</script>')
    assert [s.filename for s in with_figure] == ["_static/doctools.js", "_static/plotly/plotly.min.js", None,
                                                 "_static/mathjax/tex-chtml.js"]
