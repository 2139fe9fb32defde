"""A Sphinx extension of the course website (named in ``_config.yml``, ``sphinx.local_extensions``).

* **Scripts once.** Jupyter Book adds sphinx-thebe's inline set-up script twice (every page
  threw ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``): a script that
  appears twice on a page is kept once.
* **plotly.js only where a figure needs it, and only when the reader gets there.**
  ``plotly.min.js`` is 4.8 MB: loaded in the page's head it held up the first paint (and, deferred,
  MathJax, which runs after it) by tens of seconds on a phone's network. A page without a plotly
  figure never names it; a page with one carries a small loader (:data:`LOADER`) that fetches it,
  asynchronously, once the first figure comes within about a screen of the window, and each
  figure's drawing script is handed to that loader instead of calling ``Plotly`` at once.
* **Wide formulas scroll instead of being cut off**, on a desktop and on a phone
  (``static/course-site.css``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_SCRIPT = "plotly/plotly.min.js"      # under _static/ (book/build.py copies it from plotly)
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _key(script: Any) -> tuple:
    """What makes two scripts the same: the file (an inline script has none: '' or None alike)
    and the attributes, the inline text among them."""
    filename = getattr(script, "filename", script)
    attributes = getattr(script, "attributes", {}) or {}
    return str(filename or ""), tuple(sorted((str(k), str(v)) for k, v in attributes.items()))


def page_scripts(scripts: list) -> list:
    """``scripts`` without repeats, without plotly.js (the loader fetches it where needed) and
    without the ipywidgets state myst-nb embeds: the site loads no widget manager to read it
    (``nb_ipywidgets_js`` is empty; widget cells point to the live notebook), so it was up to
    100 kB of a page's head for nothing."""
    kept, seen = [], set()
    for script in scripts:
        key = _key(script)
        if key in seen or key[0].endswith(PLOTLY_SCRIPT) or ("type", WIDGET_STATE) in key[1]:
            continue
        seen.add(key)
        kept.append(script)
    return kept



# The inline script plotly writes after each figure's <div> (dgm.plotting.PlotlyFigure.to_html).
# An HTML parser ends a script at the first "</script>", so the non-greedy match is exactly it.
FIGURE_SCRIPT = re.compile(r"<script([^>]*)>(\s*window\.PLOTLYENV\b.*?)</script>", re.S)
FIGURE_ID = re.compile(r"""document\.getElementById\(["']([^"']+)["']\)""")

#: Put before a page's first figure; ``{src}`` is plotly.min.js relative to the page. Figures
#: call ``dgmPlotly(div id, draw)``: with plotly loaded it draws at once; otherwise the figure
#: waits, and plotly.js is requested when a waiting figure is within 800 px of the window (at
#: once where the browser has no IntersectionObserver, or the figure's div cannot be found). Asking
#: to print starts the fetch too (a figure not yet drawn is in the next print). A figure that
#: throws does not stop the others; a failed fetch says so where the figures are.
LOADER = """<script>
window.dgmPlotly = window.dgmPlotly || (function (src) {
  var waiting = [], requested = false;
  function request() {
    if (requested) { return; }
    requested = true;
    var script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.onload = function () {
      waiting.splice(0).forEach(function (draw) {
        try { draw(); } catch (e) { setTimeout(function () { throw e; }); }  // one figure never stops the rest
      });
    };
    script.onerror = function () {   // say so where the figures should be, rather than leave them blank
      waiting.splice(0);
      Array.prototype.forEach.call(document.querySelectorAll(".plotly-graph-div"), function (div) {
        div.textContent = "This interactive figure could not load its library (" + src + ").";
      });
    };
    document.head.appendChild(script);
  }
  var near = ("IntersectionObserver" in window) ? new IntersectionObserver(function (entries) {
    if (entries.some(function (e) { return e.isIntersecting; })) { near.disconnect(); request(); }
  }, {rootMargin: "800px 0px"}) : null;
  window.addEventListener("beforeprint", request);
  return function (id, draw) {
    if (window.Plotly) { draw(); return; }
    waiting.push(draw);
    var div = id && document.getElementById(id);
    if (near && div) { near.observe(div); } else { request(); }
  };
})("{src}");
</script>"""


def figures_on_demand(body: str, plotly_src: str) -> str:
    """``body`` with each plotly figure drawn through the loader, and the loader before the first.

    ``plotly_src``: the URL of plotly.min.js relative to the page. A body without a figure comes
    back unchanged; so does one already rewritten.
    """
    def wrap(match: re.Match) -> str:
        found = FIGURE_ID.search(match.group(2))
        div = json.dumps(found.group(1) if found else None)
        return f"<script{match.group(1)}>window.dgmPlotly({div}, function () {{{match.group(2)}}});</script>"

    first = FIGURE_SCRIPT.search(body)
    if first is None:
        return body
    loader = LOADER.replace("{src}", plotly_src)
    return body[:first.start()] + loader + FIGURE_SCRIPT.sub(wrap, body[first.start():])


def _on_page(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    body = context.get("body")
    if isinstance(body, str) and "Plotly.newPlot" in body:
        context["body"] = figures_on_demand(body, context["pathto"]("_static/" + PLOTLY_SCRIPT, 1))
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        scripts[:] = page_scripts(scripts)


def _on_builder(app) -> None:
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app) -> dict:
    app.connect("builder-inited", _on_builder)
    app.connect("html-page-context", _on_page, priority=900)   # after the themes have added theirs
    app.add_css_file("course-site.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
