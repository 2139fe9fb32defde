"""Launch buttons that give a working notebook (Binder, Colab, a JupyterHub).

* Every chapter page offers its exercise ``exercises/<c>/<c>.ipynb`` and the chapter as a notebook
  ``notebooks/<c>.ipynb`` on every host, with URLs of the hosts' own forms whose repository and
  branch are ``_config.yml``'s and whose path names a notebook git would commit; the other pages
  offer nothing. Fast: from the extension's function (book/_ext/course_launch.py); slow: from the
  built site's HTML.
* The install cell, first code cell of every exercise and chapter notebook: it does nothing where
  the package imports, installs the release (``git+<url>@v<version>``) where it does not, and
  installs from ``DGM_COURSE_SOURCE`` when set. Slow: it installs the course from a copy of this
  checkout into a bare virtualenv, after which the exercise's set-up cell and one check run.
* The chapter notebooks are current with ``book/<c>.md`` and hold no MyST-only syntax.
* Binder's pins agree with requirements.txt.

The expected values are built here from ``_config.yml`` and ``pyproject.toml`` as the hosts
document their URLs, not with :mod:`autograder.launch`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
import yaml

from test_book import CHAPTERS_WITHOUT_EXERCISE, numbered_chapters, toc_documents

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPO_URL = CONFIG["repository"]["url"]
BRANCH = CONFIG["repository"]["branch"]
OWNER, REPO_NAME = urlsplit(REPO_URL).path.strip("/").split("/")
LAUNCH = CONFIG["launch_buttons"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
#: what the install cell installs where the package is missing
RELEASE_REQUIREMENT = f"dgm[coursework] @ git+{REPO_URL}@v{VERSION}"
UI = {"jupyterlab": "lab/tree", "classic": "tree"}[LAUNCH.get("notebook_interface", "classic")]
#: the hosts this course's _config.yml offers (a fork may drop one; Colab opens GitHub repositories only)
HOSTS = tuple(host for host, key in (("binder", "binderhub_url"), ("jupyterhub", "jupyterhub_url"), ("colab", "colab_url"))
              if LAUNCH.get(key) and (host != "colab" or urlsplit(REPO_URL).netloc == "github.com"))


def _extension():
    spec = importlib.util.spec_from_file_location("course_launch", ROOT / "book" / "_ext" / "course_launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committable() -> set[str]:
    """The files git commits from this checkout: tracked, or new and not ignored (``_build/`` and the
    venv are ignored, so a notebook there is not in the repository Binder and Colab read)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return {p for p in listed if p and (ROOT / p).is_file()}


def expected_notebooks(stem: str) -> dict[str, str]:
    """What chapter ``stem``'s launch menu opens: its exercise (unless test_book.py lists the chapter
    as shipping without one) and its notebook form."""
    wanted = {"exercise": f"exercises/{stem}/{stem}.ipynb", "chapter": f"notebooks/{stem}.ipynb"}
    return {k: v for k, v in wanted.items() if not (k == "exercise" and stem in CHAPTERS_WITHOUT_EXERCISE)}


def link_problems(host: str, url: str, path: str) -> list[str]:
    """What is wrong with ``url`` as ``host``'s link to ``path`` of this repository (see the hosts'
    documentation: Binder's ``/v2/gh/<owner>/<repo>/<ref>?urlpath=``, nbgitpuller's ``git-pull``
    query, Colab's ``/github/<owner>/<repo>/blob/<branch>/<path>``)."""
    parts, query = urlsplit(url), parse_qs(urlsplit(url).query)
    if host == "binder":
        hub = urlsplit(LAUNCH["binderhub_url"])
        want = (hub.scheme, hub.netloc, f"/v2/gh/{OWNER}/{REPO_NAME}/{BRANCH}", {"urlpath": [f"{UI}/{path}"]})
        got = (parts.scheme, parts.netloc, parts.path, query)
    elif host == "jupyterhub":
        hub = urlsplit(LAUNCH["jupyterhub_url"])
        want = (hub.scheme, hub.netloc, "/hub/user-redirect/git-pull",
                {"repo": [REPO_URL], "branch": [BRANCH], "urlpath": [f"{UI}/{REPO_NAME}/{path}"]})
        got = (parts.scheme, parts.netloc, parts.path, query)
    else:
        want = f"{LAUNCH['colab_url'].rstrip('/')}/github/{OWNER}/{REPO_NAME}/blob/{BRANCH}/{path}"
        got = url
        if not re.fullmatch(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/.+\.ipynb", url):
            return [f"{url} is not of Colab's form .../github/<owner>/<repo>/blob/<branch>/<path>.ipynb"]
    return [] if got == want else [f"{host}: {url}\n  expected {want}\n  got      {got}"]


def _print_table(rows: list[tuple[str, str, str, str]]) -> None:
    print()
    for page, kind, host, url in rows:
        print(f"{page:<22} {kind:<9} {host:<11} {url}")


# ------------------------------------------------------------------------------------------------
# The launch links
# ------------------------------------------------------------------------------------------------


def test_every_chapter_page_launches_its_exercise_and_its_notebook_on_every_host():
    site = _extension()
    files = committable()
    repository = site.Repository(REPO_URL, BRANCH)
    rows, problems = [], []
    chapters = numbered_chapters()
    assert chapters, "no numbered chapter in _toc.yml"
    for doc in toc_documents():
        buttons = site.launch_buttons(ROOT, doc, repository, LAUNCH)
        stem = doc.rsplit("/", 1)[-1]
        if stem not in chapters:
            assert buttons == [], f"{doc} has no notebook, yet its launch menu offers {buttons}"
            continue
        by_label = {b["label"]: b["url"] for b in buttons}
        wanted = {f"launch-{kind}-{host}" for kind in expected_notebooks(stem) for host in HOSTS}
        assert set(by_label) == wanted and len(buttons) == len(wanted), (doc, sorted(by_label))
        for kind, path in expected_notebooks(stem).items():
            assert path in files, f"{path} is not in the repository (missing, or ignored by git)"
            for host in HOSTS:
                url = by_label[f"launch-{kind}-{host}"]
                problems += link_problems(host, url, path)
                rows.append((doc, kind, host, url))
    _print_table(rows)
    assert not problems, "\n".join(problems)


def test_the_launch_links_follow_the_one_repository_setting(tmp_path):
    """A fork changes ``repository`` in _config.yml and the version in pyproject.toml; the links and
    the install cell follow, and nothing else names the repository."""
    from autograder import launch

    fork = dict(CONFIG, repository={"url": "https://github.com/some-uni/dgm-fork", "branch": "spring"},
                launch_buttons={"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
                                "colab_url": "https://colab.research.google.com",
                                "jupyterhub_url": "https://hub.dgm-course.org"})
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(fork), encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "dgm"\nversion = "2.3.4"\n', encoding="utf-8")
    repository = launch.Repository.from_config(tmp_path)
    links = launch.launch_links(repository, launch.launch_config(tmp_path), "exercises/x/x.ipynb")
    assert links == {
        "Binder": "https://mybinder.org/v2/gh/some-uni/dgm-fork/spring?urlpath=lab/tree/exercises/x/x.ipynb",
        "JupyterHub": ("https://hub.dgm-course.org/hub/user-redirect/git-pull?repo=https%3A//github.com/some-uni/"
                       "dgm-fork&urlpath=lab/tree/dgm-fork/exercises/x/x.ipynb&branch=spring"),
        "Colab": "https://colab.research.google.com/github/some-uni/dgm-fork/blob/spring/exercises/x/x.ipynb",
    }
    assert '"git+https://github.com/some-uni/dgm-fork@v2.3.4"' in launch.install_cell_source(tmp_path)
    # in this repository, the URL is written in _config.yml and in what `release` generates from it
    generated = ("solutions/", "exercises/", "notebooks/", "autograder/samples/")
    naming = sorted(p for p in committable() if not p.startswith(generated)
                    and REPO_URL.split("//")[1] in (ROOT / p).read_text(encoding="utf-8", errors="replace"))
    assert naming == ["_config.yml"], f"the repository URL is written outside _config.yml: {naming}"


# ------------------------------------------------------------------------------------------------
# The install cell
# ------------------------------------------------------------------------------------------------


def _notebooks_with_install_cells() -> list[Path]:
    from autograder.course import assignments, release_notebook, source_notebook

    stems = assignments(ROOT)
    return ([source_notebook(ROOT, a) for a in stems] + [release_notebook(ROOT, a) for a in stems]
            + [ROOT / "notebooks" / f"{c}.ipynb" for c in numbered_chapters()])


def _install_source() -> str:
    from autograder.course import release_notebook

    nb = nbformat.read(release_notebook(ROOT, numbered_chapters()[0]), as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code").source


def test_every_exercise_and_chapter_notebook_starts_with_the_install_cell():
    sources = {}
    for path in _notebooks_with_install_cells():
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        name = path.relative_to(ROOT).as_posix()
        assert first.get("id") == "install", f"{name}: the first code cell is not the install cell"
        sources[name] = first.source
        if not name.startswith("notebooks/"):
            meta = first.metadata["nbgrader"]
            assert meta["grade_id"] == "install" and meta["locked"] and not meta["solution"] and not meta["grade"], meta
        if name.startswith("exercises/"):   # nbgrader locks it in the students' copy
            assert first.metadata.get("editable") is False and first.metadata.get("deletable") is False
    assert len(set(sources.values())) == 1, "the install cells differ between notebooks; run `make release`"
    source = next(iter(sources.values()))
    assert f'"git+{REPO_URL}@v{VERSION}"' in source and '"dgm[coursework] @ {source}"' in source, source


def _run_cell(source: str) -> str:
    """Run ``source`` as a notebook cell would, in this process; returns what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<install cell>", "exec"), {"__name__": "__main__"})
    return out.getvalue()


def test_the_install_cell_does_nothing_where_the_package_is_installed(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the install cell ran a process although dgm and coursework import: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setenv("DGM_COURSE_SOURCE", str(ROOT))   # even with an override set
    assert _run_cell(_install_source()) == ""


@pytest.mark.parametrize("override", [None, "folder", "git+https://example.org/fork.git@v9"])
def test_the_install_cell_installs_the_release_where_the_package_is_missing(monkeypatch, tmp_path, override):
    real_find_spec = importlib.util.find_spec
    calls = []   # coursework is missing until pip has run
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "coursework" and not calls else real_find_spec(name, *a))
    monkeypatch.setattr(subprocess, "run",
                        lambda args, **kw: calls.append(args) or subprocess.CompletedProcess(args, 0, "", ""))
    if override is None:
        monkeypatch.delenv("DGM_COURSE_SOURCE", raising=False)
        want = RELEASE_REQUIREMENT
    elif override == "folder":
        monkeypatch.setenv("DGM_COURSE_SOURCE", str(tmp_path))
        want = f"dgm[coursework] @ file://{tmp_path.resolve()}"
    else:
        monkeypatch.setenv("DGM_COURSE_SOURCE", override)
        want = f"dgm[coursework] @ {override}"
    printed = _run_cell(_install_source())
    assert calls == [[sys.executable, "-m", "pip", "install", want]]
    assert printed.startswith("Installed the course's package from ")


@pytest.mark.parametrize("seen_after_adding_the_user_site", [True, False])
def test_the_install_cell_finds_a_user_install_or_asks_for_a_restart(monkeypatch, seen_after_adding_the_user_site):
    """pip on a read-only environment installs into the user's site-packages, which a running kernel
    does not search if the folder did not exist at start-up: the cell adds it, and when the package
    is still not found it says to restart the kernel instead of failing later in the set-up cell."""
    import site

    real_find_spec = importlib.util.find_spec
    added = []
    monkeypatch.setattr(site, "addsitedir", lambda path: added.append(path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        real_find_spec(name, *a) if name in ("dgm", "coursework") and added and seen_after_adding_the_user_site
        else None if name in ("dgm", "coursework") else real_find_spec(name, *a)))
    monkeypatch.delenv("DGM_COURSE_SOURCE", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: subprocess.CompletedProcess(args, 0, "", ""))
    if seen_after_adding_the_user_site:
        assert _run_cell(_install_source()).startswith("Installed the course's package from ")
    else:
        with pytest.raises(RuntimeError, match="restart the kernel, then run this cell again"):
            _run_cell(_install_source())
    assert added == [site.getusersitepackages()]


def test_the_install_cell_says_why_pip_failed(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.delenv("DGM_COURSE_SOURCE", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: subprocess.CompletedProcess(
        args, 1, "", "ERROR: could not resolve host github.com"))
    with pytest.raises(RuntimeError, match="could not install the course's package from git\\+https://.*\n"
                                           "ERROR: could not resolve host github.com"):
        _run_cell(_install_source())


def test_put_install_cell_puts_it_first_among_code_cells_once():
    from autograder.launch import put_install_cell

    nb = nbformat.v4.new_notebook()
    old = nbformat.v4.new_code_cell("print('old install')")
    old.id = "install"
    nb.cells = [nbformat.v4.new_markdown_cell("# Intro"), nbformat.v4.new_code_cell("import torch"), old]
    new = nbformat.v4.new_code_cell("print('install')")
    new.id = "install"
    assert put_install_cell(nb, new) is True
    assert [c.source for c in nb.cells] == ["# Intro", "print('install')", "import torch"]
    assert put_install_cell(nb, new) is False


@pytest.mark.slow
def test_the_install_cell_installs_the_course_into_a_bare_virtualenv(tmp_path):
    """A virtualenv with nothing but pip gets the course from the install cell (pointed at a copy
    of this checkout), then runs Exercise 1's set-up cell and one of its checks; the install cell,
    run again in IPython, runs no process."""
    from autograder.course import release_notebook, source_notebook

    checkout = tmp_path / "checkout"
    for rel in committable():   # the checkout's files, not its .venv, _build or egg-info
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, checkout / rel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env |= {"DGM_COURSE_SOURCE": str(checkout), "PIP_NO_INPUT": "1",
            # the versions requirements.txt pins (the same packages; without it pip would take the
            # newest torch it finds, the CUDA build of several gigabytes)
            "PIP_CONSTRAINT": str(ROOT / "requirements.txt")}

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    bare = run("-c", "import importlib.util as u; print([u.find_spec(m) for m in ('dgm', 'coursework', 'torch', 'IPython')])")
    assert bare.stdout.strip() == "[None, None, None, None]", bare.stdout + bare.stderr

    exercise = nbformat.read(release_notebook(ROOT, "01-elbo"), as_version=4)
    solution = nbformat.read(source_notebook(ROOT, "01-elbo"), as_version=4)
    code = {c.metadata["nbgrader"]["grade_id"]: c.source for c in exercise.cells
            if c.cell_type == "code" and "nbgrader" in c.metadata}
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells if "nbgrader" in c.metadata}

    installed = run("-c", code["install"], timeout=1200)
    print(installed.stdout, installed.stderr[-2000:])
    assert installed.returncode == 0, installed.stderr[-4000:]
    assert installed.stdout.strip() == f"Installed the course's package from {checkout.as_uri()}."

    cells = [("install", code["install"]), ("setup", code["setup"]),
             ("gaussian_kl_diag", answers["gaussian_kl_diag"]),
             ("test_gaussian_kl_diag_visible", code["test_gaussian_kl_diag_visible"])]
    (tmp_path / "cells.json").write_text(json.dumps(cells), encoding="utf-8")
    kernel = run("-c", KERNEL, str(tmp_path / "cells.json"), timeout=600)
    print(kernel.stdout, kernel.stderr[-2000:])
    assert kernel.returncode == 0, kernel.stdout + kernel.stderr[-4000:]
    lines = kernel.stdout.splitlines()
    assert "install: ok" in lines and "setup: ok" in lines and "gaussian_kl_diag: ok" in lines
    assert "gaussian_kl_diag: all visible checks passed" in lines
    assert not any(line.startswith("Installed") for line in lines), "the second run of the install cell installed"
    where = next(line for line in lines if line.startswith("dgm from "))
    assert where.startswith(f"dgm from {venv}"), f"dgm is not the virtualenv's own copy: {where}"


#: Runs cells, as a kernel would, in IPython in the virtualenv, refusing to start any process.
KERNEL = """
import json, subprocess, sys

def refuse(*args, **kwargs):
    raise AssertionError(f"a cell started a process: {args}")

subprocess.run = subprocess.Popen = refuse
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for name, source in json.load(open(sys.argv[1])):
    result = shell.run_cell(source)
    if not result.success:
        print(f"{name}: FAILED")
        sys.exit(1)
    print(f"{name}: ok")
import dgm
print("dgm from", dgm.__file__)
"""


# ------------------------------------------------------------------------------------------------
# The chapters as notebooks
# ------------------------------------------------------------------------------------------------


def test_chapter_notebooks_are_current():
    from autograder.launch import stale_chapter_notebooks

    stale = stale_chapter_notebooks(ROOT)
    assert not stale, "notebooks/ is out of date with book/; run `make release`:\n" + "\n".join(stale)


@pytest.mark.parametrize("stem", numbered_chapters())
def test_a_chapter_notebook_is_its_page_in_plain_markdown_with_the_same_code(stem):
    import jupytext

    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    page = jupytext.read(ROOT / "book" / f"{stem}.md")
    code = [c.source for c in nb.cells if c.cell_type == "code" and c.get("id") != "install"]
    assert code == [c.source for c in page.cells if c.cell_type == "code"], "the code differs from the page's"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    leftovers = (re.findall(r"\{[a-z]+\}`[^`]*`", text) + re.findall(r"(?m)^\([^()\s]+\)=\s*$", text)
                 + re.findall(r"\$\$[ \t]*\([^()\s]+\)", text) + re.findall(r"(?m)^(?:```|:::)\{", text))
    assert not leftovers, f"MyST syntax a notebook shows as text: {leftovers[:5]}"
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets and targets <= anchors, f"links to anchors the notebook lacks: {sorted(targets - anchors)}"
    tags = [int(n) for n in re.findall(r"\\tag\{(\d+)\}", text)]
    assert tags == list(range(1, len(tags) + 1)) and tags, "the page's labelled equations are numbered 1, 2, ..."


def test_myst_constructs_become_markdown_a_notebook_renders(tmp_path):
    from autograder import launch

    (tmp_path / "_config.yml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "notation.md").write_text("---\nkernelspec: {}\n---\n(notation)=\n# Notation\n", encoding="utf-8")
    page = launch.MystPage(tmp_path, "book/99-x", launch.Repository.from_config(tmp_path), LAUNCH,
                        headings={"sec-a": "Section *A*"}, equations={"eq-a": 1, "eq-b": 2})
    text = (
        "(sec-a)=\n## Section *A*\n\nSo\n\n$$\na = b\n$$ (eq-a)\n\n"
        "1. item\n\n   $$\nc\n   $$ (eq-b)\n\n"
        "By {eq}`eq-b`, see {ref}`sec-a`, {ref}`this <sec-a>`, {ref}`far <elsewhere>`, {doc}`notation`,\n"
        "{doc}`the symbols <notation>`, {math}`x^2`, {abbr}`KL (Kullback-Leibler)` and\n"
        "{download}`x.ipynb <../exercises/x/x.ipynb>`.\n\n"
        "```{note} Careful\n:class: tip\nBoth sides.\n```\n"
    )
    blob = f"{REPO_URL}/blob/{BRANCH}/book/notation.md"
    colab = f"https://colab.research.google.com/github/{OWNER}/{REPO_NAME}/blob/{BRANCH}/exercises/x/x.ipynb"
    assert launch.myst_to_markdown(text, page) == (
        '<a id="sec-a"></a>\n## Section *A*\n\nSo\n\n<a id="eq-a"></a>\n\n$$\na = b\n\\tag{1}\n$$\n\n'
        '1. item\n\n   <a id="eq-b"></a>\n\n   $$\nc\n   \\tag{2}\n   $$\n\n'
        f"By [(2)](#eq-b), see [Section *A*](#sec-a), [this](#sec-a), far, [Notation]({blob}),\n"
        f"[the symbols]({blob}), $x^2$, KL (Kullback-Leibler) and\n"
        f"[x.ipynb](../exercises/x/x.ipynb) ([open it in Colab]({colab})).\n\n"
        "> **Note** Careful\n>\n> Both sides.\n"
    )


@pytest.mark.slow
def test_the_built_site_launches_the_notebooks_and_numbers_equations_alike(site):
    """Read the launch menus off the built pages (what a reader clicks), and compare each chapter
    notebook's numbered equations with the page's."""
    files = committable()
    rows, problems = [], []
    for doc in toc_documents():
        page = site / f"{doc}.html"
        text = page.read_text(encoding="utf-8")
        parser = LaunchLinks()
        parser.feed(text)
        stem = doc.rsplit("/", 1)[-1]
        if stem not in numbered_chapters():
            assert "dropdown-launch-buttons" not in text and not parser.links, f"{doc} offers {parser.links}"
            continue
        labels = [label for label, _ in parser.links]
        assert sorted(labels) == sorted(f"launch-{k}-{h}" for k in expected_notebooks(stem) for h in HOSTS), \
            (doc, labels)
        for label, url in parser.links:
            _, kind, host = label.split("-")
            path = expected_notebooks(stem)[kind]
            assert path in files, f"{doc}: {label} opens {path}, which is not in the repository"
            problems += link_problems(host, url, path)
            rows.append((doc, kind, host, url))
        on_page = {label: int(n) for label, n in
                   re.findall(r'id="equation-([^"]+)">\s*<span class="eqno">\((\d+)\)', text)}
        nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        in_notebook = {label: int(n) for label, n in
                       re.findall(r'<a id="([^"]+)"></a>\s*\$\$.*?\\tag\{(\d+)\}', markdown, re.S)}
        # the site numbers equations on from the previous pages (05-gans starts at 18), a notebook
        # from 1: the same equations, in the same order
        assert on_page and sorted(in_notebook, key=in_notebook.get) == sorted(on_page, key=on_page.get), \
            f"{doc}: the notebook numbers {in_notebook}, the page {on_page}"
    assert not (site / "notebooks").exists() and not (site / "binder").exists(), "notebooks/ became pages"
    _print_table(rows)
    assert not problems, "\n".join(problems)


class LaunchLinks(HTMLParser):
    """The page's launch links: (label, URL) of each ``<a class="... btn-launch-<kind>-<host> ...">``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        found = re.search(r"\bbtn-(launch-[a-z]+-[a-z]+)\b", attrs.get("class") or "")
        if tag == "a" and found:
            self.links.append((found.group(1), attrs.get("href", "")))


# ------------------------------------------------------------------------------------------------
# Binder
# ------------------------------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
        if found:
            pins[found.group(1).lower()] = found.group(2)
    return pins


def test_binder_pins_agree_with_requirements_and_install_the_package():
    binder, course = _pins(ROOT / "binder" / "requirements.txt"), _pins(ROOT / "requirements.txt")
    disagree = {n: (v, course.get(n)) for n, v in binder.items() if v.split("+")[0] != course.get(n)}
    assert not disagree, f"binder/requirements.txt pins (binder, requirements.txt): {disagree}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {re.split(r"[<>=!~ ;\[]", d)[0].lower()
               for d in project["dependencies"] + project["optional-dependencies"]["coursework"]}
    unpinned = sorted(n for n in (runtime | {"ipywidgets"}) & set(course) if n not in binder)
    assert not unpinned, f"the notebooks import these, pinned in requirements.txt but not for Binder: {unpinned}"
    text = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8")
    assert binder["torch"].endswith("+cpu") and "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & stat.S_IXUSR, "binder/postBuild must be executable"
    assert re.search(r"-m pip install --no-deps .*-e \.$", post_build.read_text(encoding="utf-8"), re.M)
    runtime_python = (ROOT / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    assert runtime_python == "python-3.11", "requirements.txt's pins resolve together on Python 3.11"
