"""Unit tests of dgm.plotting: what a chapter's figure hands to the book and to JupyterLab."""

import json
import re

import matplotlib as mpl
import plotly.graph_objects as go
import pytest

from dgm import plotting
from dgm.plotting import PLOTLY_MIMETYPE, plotly_slider_figure, show_plotly, use_course_style


def small_figure(title=None):
    return go.Figure(go.Scatter(x=[0.0, 1.0, 2.0], y=[1.0, 0.5, 0.25]), layout={"title": {"text": title}})


def test_bundle_has_html_for_the_book_and_json_for_jupyterlab():
    bundle = show_plotly(small_figure("KL"))._repr_mimebundle_()
    assert {"text/html", PLOTLY_MIMETYPE, "text/plain"} <= set(bundle)
    spec = bundle[PLOTLY_MIMETYPE]
    json.dumps(spec)  # plain JSON, no numpy arrays left in it
    assert spec["data"][0]["type"] == "scatter"
    assert "layout" in spec
    assert "KL" in bundle["text/plain"]


def test_html_draws_into_its_div_and_loads_nothing():
    shown = show_plotly(small_figure())
    page = shown._repr_mimebundle_()["text/html"]
    assert f'id="{shown.div_id}"' in page
    assert "Plotly.newPlot" in page
    # plotly.js and MathJax come from the site's own _static, never inlined or from a CDN.
    assert not re.search(r"<script[^>]*\bsrc\s*=", page), "the figure HTML must not load scripts"
    assert "cdn" not in page.lower()
    assert not re.search(r"https?://|//cdn", page), "the figure HTML must reference no remote URL"
    assert len(page) < 200_000, "plotly.js must not be inlined into the figure"


def test_div_ids_count_up_and_restart_identically(monkeypatch):
    import itertools

    monkeypatch.setattr(plotting, "_figure_counter", itertools.count(1))
    first = [show_plotly(small_figure()).div_id for _ in range(3)]
    monkeypatch.setattr(plotting, "_figure_counter", itertools.count(1))
    again = [show_plotly(small_figure())._repr_mimebundle_()["text/html"] for _ in range(3)]
    assert first == ["dgm-plotly-1", "dgm-plotly-2", "dgm-plotly-3"]
    # A fresh kernel (= a fresh counter) reproduces the HTML byte for byte.
    monkeypatch.setattr(plotting, "_figure_counter", itertools.count(1))
    assert [show_plotly(small_figure())._repr_mimebundle_()["text/html"] for _ in range(3)] == again


def test_repeated_display_of_one_object_keeps_its_id():
    shown = show_plotly(small_figure())
    assert shown._repr_mimebundle_()["text/html"] == shown._repr_mimebundle_()["text/html"]


def test_show_plotly_rejects_a_non_figure():
    with pytest.raises(TypeError, match="plotly.graph_objects.Figure"):
        show_plotly({"data": []})


def test_slider_figure_shows_one_group_per_step():
    steps = [
        [go.Scatter(x=[0], y=[0], name="a0")],
        [go.Scatter(x=[1], y=[1], name="b0"), go.Scatter(x=[1], y=[2], name="b1")],
        [go.Scatter(x=[2], y=[2], name="c0")],
    ]
    fig = plotly_slider_figure(steps, [0.5, 1.0, 2.0], slider_prefix="σ = ", titles=["A", "B", "C"], active=1)
    assert [t.name for t in fig.data] == ["a0", "b0", "b1", "c0"]
    assert [t.visible for t in fig.data] == [False, True, True, False]
    slider = fig.layout.sliders[0]
    assert slider.active == 1
    assert [s.label for s in slider.steps] == ["0.5", "1", "2"]
    assert slider.steps[2].args[0] == {"visible": [False, False, False, True]}
    assert slider.steps[0].args[1] == {"title.text": "A"}
    assert fig.layout.title.text == "B"
    assert steps[0][0].visible is None, "the caller's traces must not be modified"


@pytest.mark.parametrize(
    "steps, labels, kwargs, match",
    [
        ([], [], {}, "steps must hold at least one"),
        ([[go.Scatter()]], [1, 2], {}, "labels must have one entry per step"),
        ([[go.Scatter()]], [1], {"titles": ["a", "b"]}, "titles must have one entry per step"),
        ([[go.Scatter()]], [1], {"active": 1}, r"active must be an integer in \[0, 0\]; got 1"),
        ([[]], [1], {}, r"steps\[0\] must be a non-empty sequence"),
    ],
)
def test_slider_figure_bad_inputs(steps, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotly_slider_figure(steps, labels, **kwargs)


def test_course_style_sets_readable_defaults():
    with mpl.rc_context():
        use_course_style()
        assert mpl.rcParams["font.size"] >= 11
        assert mpl.rcParams["figure.constrained_layout.use"] is True
        colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
        assert colours[:2] == list(plotting.COURSE_COLOURS[:2])


def test_dgm_plotting_imports_no_other_room():
    source = open(plotting.__file__, encoding="utf-8").read()
    for room in ("book", "solutions", "exercises", "autograder", "tests"):
        assert not re.search(rf"^\s*(from|import)\s+{room}\b", source, re.M), room


def test_the_website_html_lays_a_figure_out_again_on_a_narrow_screen():
    """The figure's HTML runs the narrow-screen layout after drawing (the browser test checks the
    result at 390 px); JupyterLab's JSON does not carry it."""
    import plotly.graph_objects as go

    from dgm.plotting import NARROW_SCREEN_SCRIPT, plotly_slider_figure, show_plotly

    fig = plotly_slider_figure([[go.Scatter(x=[0, 1], y=[0, i])] for i in range(3)], [0, 1, 2])
    bundle = show_plotly(fig)._repr_mimebundle_()
    page = bundle["text/html"]
    div_id = page.split('<div id="', 1)[1].split('"', 1)[0]
    assert "clientWidth < 600" in page and f"document.getElementById('{div_id}')" in page
    assert page.index("Plotly.newPlot") < page.index("clientWidth < 600")   # after the figure is drawn
    assert "{plot_id}" in NARROW_SCREEN_SCRIPT and "clientWidth" not in str(bundle["application/vnd.plotly.v1+json"])
