"""A Sphinx extension of the course website (named in ``_config.yml``, ``sphinx.local_extensions``).

* **Scripts once, and plotly only where a figure needs it.** Jupyter Book adds sphinx-thebe's
  inline set-up script twice (every page threw ``SyntaxError: Identifier 'THEBE_JS_URL' has
  already been declared``): a script that appears twice on a page is kept once. ``plotly.min.js``
  (4.8 MB) is kept only on pages that draw a plotly figure (their HTML calls ``Plotly.newPlot``).
* **Wide formulas scroll instead of being cut off**, on a desktop and on a phone
  (``static/course-site.css``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_SCRIPT = "plotly/plotly.min.js"


def _key(script: Any) -> tuple:
    """What makes two scripts the same: the file (an inline script has none: '' or None alike)
    and the attributes, the inline text among them."""
    filename = getattr(script, "filename", script)
    attributes = getattr(script, "attributes", {}) or {}
    return str(filename or ""), tuple(sorted((str(k), str(v)) for k, v in attributes.items()))


def page_scripts(scripts: list, body: str) -> list:
    """``scripts`` without repeats and, where ``body`` draws no plotly figure, without plotly.js."""
    kept, seen = [], set()
    needs_plotly = "Plotly.newPlot" in body
    for script in scripts:
        key = _key(script)
        if key in seen or (key[0].endswith(PLOTLY_SCRIPT) and not needs_plotly):
            continue
        seen.add(key)
        kept.append(script)
    return kept


def _on_page(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        scripts[:] = page_scripts(scripts, str(context.get("body", "")))


def _on_builder(app) -> None:
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app) -> dict:
    app.connect("builder-inited", _on_builder)
    app.connect("html-page-context", _on_page, priority=900)   # after the themes have added theirs
    app.add_css_file("course-site.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
