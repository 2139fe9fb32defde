"""The website's launch buttons open notebooks that work (named in ``_config.yml``,
``sphinx.local_extensions``).

sphinx-book-theme builds its Binder, JupyterHub and Colab links from the page's source, here
``book/<page>.md``: Colab cannot open that, and JupyterLab shows it as text. This extension
replaces the theme's launch menu, on every page, with links to what the page has as notebooks
(:func:`autograder.launch.page_notebooks`): its **exercise** ``exercises/<page>/<page>.ipynb``
and the **chapter** as a notebook, ``notebooks/<page>.ipynb`` (written by ``python -m autograder
release``), each on every host ``launch_buttons`` names. A page with neither (the intro, the
notation and slips pages) has no launch menu. The URLs keep the theme's forms and come from the
same settings (``repository`` and ``launch_buttons`` of ``_config.yml``).
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The repository root: the grader's package (``autograder``, not installed) is imported from it.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from autograder.launch import HOST_ICONS, Repository, launch_links, page_notebooks  # noqa: E402

GROUP_LABEL = "launch-buttons"          # the theme's launch menu (sphinx_book_theme/header_buttons/launch.py)
WHAT = {"exercise": "the exercise", "chapter": "this chapter as a notebook"}
SHORT = {"exercise": "Exercise", "chapter": "Chapter"}


def launch_buttons(root: Path, pagename: str, repository: Repository, config: dict) -> list[dict]:
    """The entries of ``pagename``'s launch menu: for each notebook of the page, one link per host,
    labelled ``launch-<exercise|chapter>-<host>`` (the button's CSS class is ``btn-`` + label)."""
    buttons = []
    for kind, path in page_notebooks(root, pagename):
        for host, url in launch_links(repository, config, path).items():
            buttons.append({"type": "link", "text": f"{SHORT[kind]} on {host}", "url": url,
                            "tooltip": f"Open {WHAT[kind]} ({path}) on {host}", "icon": HOST_ICONS[host],
                            "label": f"launch-{kind}-{host.lower()}"})
    return buttons


def _on_page(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    header = context.get("header_buttons")
    if not isinstance(header, list):
        return
    theme = app.config.html_theme_options
    at = next((i for i, b in enumerate(header) if isinstance(b, dict) and b.get("label") == GROUP_LABEL), None)
    if at is not None:
        del header[at]
    url, branch = theme.get("repository_url"), theme.get("repository_branch")
    if not url or not branch:
        return
    buttons = launch_buttons(ROOT, pagename, Repository(str(url).rstrip("/").removesuffix(".git"),
                                                              str(branch)), theme.get("launch_buttons") or {})
    if buttons:
        header.insert(0 if at is None else at, {"type": "group", "tooltip": "Launch the exercise or this chapter",
                                                "icon": "fas fa-rocket", "buttons": buttons, "label": GROUP_LABEL})


def setup(app) -> dict:
    # after sphinx-book-theme's add_launch_buttons (priority 501) has built its menu
    app.connect("html-page-context", _on_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
