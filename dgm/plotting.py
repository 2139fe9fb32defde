"""Figures shared by the chapters: one course style, plotly figures that work on the static site.

Three functions, used the same way by every chapter:

* :func:`use_course_style` — matplotlib defaults (font sizes, constrained layout, colours);
* :func:`show_plotly` — display a plotly figure so that it renders both in JupyterLab and on
  the built website, offline (the site loads ``plotly.min.js`` itself; no CDN);
* :func:`plotly_slider_figure` — an interactive figure with a slider from precomputed traces,
  the static-page counterpart of an ipywidgets control.

A chapter cell ends with ``show_plotly(fig)`` (not ``fig.show()``: plotly's default renderer
emits only JSON, which the static site cannot draw).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COURSE_COLOURS", "use_course_style", "show_plotly", "PlotlyFigure", "plotly_slider_figure"]

# Okabe–Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
COURSE_COLOURS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

# Figure ids count up from 1 in each kernel, so rebuilding an unchanged chapter gives the same
# HTML (a random id would change every page on every build).
_figure_counter = itertools.count(1)


def use_course_style() -> None:
    """Set matplotlib's defaults to the course style: readable sizes, constrained layout, colours.

    Call it once at the top of a chapter or notebook. It changes ``matplotlib.rcParams`` only.
    """
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.constrained_layout.use": True,
            "font.size": 12,
            "axes.titlesize": 13,
            "axes.labelsize": 12,
            "xtick.labelsize": 11,
            "ytick.labelsize": 11,
            "legend.fontsize": 11,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "lines.linewidth": 2.0,
            "axes.prop_cycle": cycler(color=list(COURSE_COLOURS)),
        }
    )


#: Run on the website after a figure is drawn (plotly's ``post_script``; ``{plot_id}`` is its div):
#: in a column narrower than 600 px (a phone), smaller text, long subplot titles on two lines,
#: side-by-side sliders stacked under the plot at full width, the figure taller by the room they
#: need. JupyterLab draws the figure from its JSON and never runs this.
NARROW_SCREEN_SCRIPT = """
var gd = document.getElementById('{plot_id}');
if (gd && gd.clientWidth && gd.clientWidth < 600) {
  var L = gd.layout, m = L.margin || {}, sliders = L.sliders || [];
  var top = m.t === undefined ? 80 : m.t, extra = 95 * Math.max(0, sliders.length - 1);
  var height = (L.height || 450) + extra, bottom = (m.b === undefined ? 80 : m.b) + extra;
  var u = {'font.size': 10, 'margin.l': 42, 'margin.r': 8, 'height': height, 'margin.b': bottom};
  (L.annotations || []).forEach(function (a, i) {
    u['annotations[' + i + '].font.size'] = 10;
    // a long plain-text subplot title goes on two lines (split at the space nearest its middle),
    // so titles of side-by-side subplots do not run into each other
    var t = a.text || '', mid = Math.floor(t.length / 2), cut = t.lastIndexOf(' ', mid);
    if (cut <= 0) { cut = t.indexOf(' ', mid); }
    if (t.length > 24 && t.indexOf('<') < 0 && cut > 0) {
      u['annotations[' + i + '].text'] = t.slice(0, cut) + '<br>' + t.slice(cut + 1);
    }
  });
  var paper = Math.max(50, height - top - bottom);
  sliders.forEach(function (s, i) {
    u['sliders[' + i + '].x'] = 0;
    u['sliders[' + i + '].len'] = 1;
    u['sliders[' + i + '].y'] = -i * 95 / paper;
    u['sliders[' + i + '].font.size'] = 9;
    u['sliders[' + i + '].currentvalue.font.size'] = 11;
  });
  u['autosize'] = true;
  Plotly.relayout(gd, u).then(function () { Plotly.Plots.resize(gd); });
}
"""


class PlotlyFigure:
    """A plotly figure as Jupyter displays it: HTML for the website, plotly JSON for JupyterLab.

    Made by :func:`show_plotly`; the figure's ``div`` id is fixed when the object is made.
    """

    def __init__(self, fig: Any, div_id: str) -> None:
        self.figure = fig
        self.div_id = div_id

    def to_html(self) -> str:
        """The figure's ``<div>`` and the script that draws it; expects ``window.Plotly``."""
        return self.figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=self.div_id,
            # A fixed height: "100%" of the page's auto-height output area would collapse.
            default_height=f"{self.figure.layout.height or 450}px",
            config={"responsive": True, "displaylogo": False},
            post_script=NARROW_SCREEN_SCRIPT,
        )

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        spec = json.loads(self.figure.to_json())
        spec["config"] = {"responsive": True, "displaylogo": False}
        title = self.figure.layout.title.text
        return {
            "text/html": self.to_html(),
            PLOTLY_MIMETYPE: spec,
            "text/plain": f"<plotly figure {self.div_id}" + (f": {title}>" if title else ">"),
        }


def show_plotly(fig: Any) -> PlotlyFigure:
    """Return ``fig`` wrapped for display; make it the last expression of a cell.

    The display carries ``text/html`` (the figure's ``div`` and a ``Plotly.newPlot`` call, with no
    plotly.js and no MathJax inside: the website loads both from its own ``_static``) and
    ``application/vnd.plotly.v1+json`` (drawn by JupyterLab). The ``div`` ids are
    ``dgm-plotly-1``, ``dgm-plotly-2``, ... in the order figures are shown in a kernel, so a
    rebuilt page is identical to the last build.

    Args:
        fig: a ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    if not isinstance(fig, go.Figure):
        raise TypeError(f"fig must be a plotly.graph_objects.Figure; got {type(fig).__name__}")
    return PlotlyFigure(fig, f"dgm-plotly-{next(_figure_counter)}")


def plotly_slider_figure(
    steps: Sequence[Sequence[Any]],
    labels: Sequence[Any],
    *,
    slider_prefix: str = "",
    titles: Sequence[str] | None = None,
    active: int = 0,
    layout: Mapping[str, Any] | None = None,
) -> Any:
    """A plotly figure with a slider that shows one precomputed group of traces per step.

    Every trace of every step is in the figure; the slider switches which group is visible. No
    kernel and no animation frames are needed, so the slider works on the static website.

    Args:
        steps: ``S`` groups of plotly traces (e.g. ``go.Scatter``), one group per slider position.
            Groups may hold different numbers of traces.
        labels: ``S`` slider tick labels (numbers are formatted with ``:g``).
        slider_prefix: text before the current label, e.g. ``"σ = "``.
        titles: optional ``S`` figure titles, one per step (e.g. the values shown at that step).
        active: index of the step shown first.
        layout: extra ``go.Layout`` properties (axis ranges, size, ...); fix the axis ranges so
            that the axes do not jump when the slider moves.

    Returns:
        A ``plotly.graph_objects.Figure``; display it with :func:`show_plotly`.
    """
    import plotly.graph_objects as go

    from dgm._validate import check_int  # here, not at the top: importing dgm.plotting does not import torch

    n_steps = len(steps)
    if n_steps == 0:
        raise ValueError("steps must hold at least one group of traces; got an empty sequence")
    if len(labels) != n_steps:
        raise ValueError(f"labels must have one entry per step ({n_steps}); got {len(labels)}")
    if titles is not None and len(titles) != n_steps:
        raise ValueError(f"titles must have one entry per step ({n_steps}); got {len(titles)}")
    active = check_int(active, "active", low=0, high=n_steps - 1)
    for i, group in enumerate(steps):
        if isinstance(group, go.Figure) or not isinstance(group, Sequence) or len(group) == 0:
            raise ValueError(f"steps[{i}] must be a non-empty sequence of plotly traces; got {type(group).__name__}")

    fig = go.Figure(layout=dict(layout or {}))
    owner: list[int] = []  # owner[j] = the step that trace j belongs to
    for i, group in enumerate(steps):
        for trace in group:
            trace = go.Figure(data=[trace]).data[0]  # a copy, so the caller's trace is untouched
            trace.visible = i == active
            fig.add_trace(trace)
            owner.append(i)

    slider_steps = []
    for i, label in enumerate(labels):
        relayout = {"visible": [k == i for k in owner]}
        args: list[Any] = [relayout]
        if titles is not None:
            args.append({"title.text": titles[i]})
        text = f"{label:g}" if isinstance(label, (int, float)) else str(label)
        slider_steps.append({"method": "update", "args": args, "label": text})
    fig.update_layout(
        sliders=[{"active": active, "steps": slider_steps, "currentvalue": {"prefix": slider_prefix}}]
    )
    if titles is not None:
        fig.update_layout(title_text=titles[active])
    return fig
