"""Build the course website into _build/html: `make book`, or `.venv/bin/python book/build.py`.

1. Copy the web assets that the site serves itself (no CDN) from installed packages:
   plotly.min.js from plotly's package data into _build/vendor/plotly/ (the folder _config.yml
   names as html_static_path). MathJax 3 is copied by the sphinx-mathjax-offline extension
   into _build/html/_static/mathjax/ when the build finishes.
2. Run `jupyter-book build --all` on the repository root with warnings as errors. `--all`
   re-reads every page so that every build reports every warning (an incremental build would
   stay silent about pages it skips); chapters are still executed only when their code changed,
   through the cache in _build/.jupyter_cache.
3. Check that every output of the executed chapters is one the website can show (a plotly
   figure must come with text/html: use dgm.plotting.show_plotly, not fig.show()).

Exits non-zero when the build fails. Safe to run again at any time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml
from myst_nb.core.render import get_mime_priority

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "_build" / "vendor"
SITE = ROOT / "_build" / "html"
EXECUTED = ROOT / "_build" / "jupyter_execute"
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


def copy_assets() -> None:
    """Copy plotly.min.js from the installed plotly package; skip it when already current."""
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not source.is_file():
        raise SystemExit(f"plotly.min.js not found at {source}; reinstall plotly (requirements.txt)")
    target = VENDOR / "plotly" / "plotly.min.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)


def toc_documents() -> list[str]:
    """The documents of _toc.yml, e.g. ``["book/intro", "book/01-elbo", ...]``."""
    text = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    return [yaml.safe_load(text)["root"]] + [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("- file:")
    ]


def outputs_the_site_cannot_show() -> list[str]:
    """Describe every executed output that the HTML pages would drop or show only as text."""
    shown = set(get_mime_priority("html", []))
    problems = []
    for document in toc_documents():
        executed = EXECUTED / f"{document}.ipynb"
        if not executed.is_file():
            continue  # a markdown page without code
        notebook = nbformat.read(executed, as_version=4)
        for index, cell in enumerate(notebook.cells):
            for output in cell.get("outputs", []):
                mimes = set(output.get("data", {}))
                if output.get("output_type") not in ("display_data", "execute_result"):
                    continue
                if not mimes & shown or (PLOTLY_MIMETYPE in mimes and "text/html" not in mimes):
                    problems.append(
                        f"{document}.md, cell {index}: an output with only {sorted(mimes)}; "
                        "the website cannot show it (for plotly: end the cell with "
                        "dgm.plotting.show_plotly(fig), not fig.show())"
                    )
    return problems


def main() -> int:
    start = time.perf_counter()
    copy_assets()
    # jupyter-book lives next to this interpreter (the course's venv).
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(ROOT), "--all", "--warningiserror", "--keep-going"]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT)
    problems = outputs_the_site_cannot_show() if result.returncode == 0 else []
    seconds = time.perf_counter() - start
    for problem in problems:
        print("ERROR:", problem)
    if result.returncode != 0 or problems:
        print(f"book/build.py: the build FAILED after {seconds:.0f} s; see above.")
        return result.returncode or 1
    print(f"book/build.py: built in {seconds:.0f} s. Open {SITE / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
