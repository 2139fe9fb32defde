"""Notebooks that work where the website's launch buttons open them: Binder, Colab, a JupyterHub.

**One place.** The repository is ``repository.url`` and ``repository.branch`` of ``_config.yml``
(the website's repository, issue and launch buttons read them there too); the course's release
is the package version in ``pyproject.toml``, published as the git tag ``v<version>``. Everything
below is derived from those two files, so a course that forks the repository changes the URL
there and runs ``python -m autograder release`` (docs/launching.md).

* :func:`install_cell_source` — the first code cell of every exercise and chapter notebook: where
  ``dgm``/``coursework`` cannot be imported (Colab, a bare JupyterHub) it pip-installs the course's
  package at the release tag, else it does nothing (the course's environment, Binder, grading).
  ``DGM_COURSE_SOURCE`` (a folder or a pip URL) installs from elsewhere instead.
  ``release`` writes it into each ``solutions/<a>/<a>.ipynb`` (:func:`put_install_cell`), so the
  exercises generated from them carry it as a locked cell.
* :func:`chapter_notebook` — ``notebooks/<stem>.ipynb``, a book page with code (``book/<stem>.md``)
  as a plain Jupyter notebook: Colab opens only ``.ipynb``, and JupyterLab shows a ``.md`` as text.
  MyST's own syntax, which only Sphinx understands, is turned into Markdown a notebook renders
  (:func:`myst_to_markdown`). ``release`` writes them; :func:`stale_chapter_notebooks` lists the
  committed ones that differ from a fresh conversion.
* :func:`launch_links` — the launch URLs of a notebook in the forms sphinx-book-theme builds
  them; :func:`page_notebooks` — which notebooks a page of the website offers (its exercise, when
  an assignment has the page's name, and its notebook form).
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import nbformat

from autograder.course import release_notebook

CONFIG_FILE = "_config.yml"
TOC_FILE = "_toc.yml"
#: Where the chapters' notebook forms are written, outside the book's source (``_config.yml``
#: excludes it, so Jupyter Book never reads them as pages).
CHAPTER_NOTEBOOK_DIR = "notebooks"
#: The grade id (exercises) and cell id (every notebook) of the install cell.
INSTALL_ID = "install"
#: The environment variable that points the install cell at another source.
SOURCE_VARIABLE = "DGM_COURSE_SOURCE"
#: What the install cell installs: the package with the checks the exercises import.
PACKAGE = "dgm[coursework]"
#: Launch hosts in the order the buttons show them, with the logos sphinx-book-theme ships.
HOST_ICONS = {"Binder": "_static/images/logo_binder.svg", "JupyterHub": "_static/images/logo_jupyterhub.svg",
              "Colab": "_static/images/logo_colab.png"}
#: The JupyterLab or classic interface's URL prefix (sphinx-book-theme's ``notebook_interface``).
INTERFACE_PREFIX = {"jupyterlab": "lab/tree", "classic": "tree"}


class LaunchError(ValueError):
    """``_config.yml`` or ``pyproject.toml`` does not say what the launch links need."""


# ------------------------------------------------------------------------------------------------
# The one place: _config.yml and pyproject.toml
# ------------------------------------------------------------------------------------------------


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@dataclass(frozen=True)
class Repository:
    """The course's git repository: ``url`` (https, no ``.git``) and ``branch``."""

    url: str
    branch: str

    @classmethod
    def from_config(cls, root: Path) -> "Repository":
        """``repository.url`` and ``repository.branch`` of ``root/_config.yml``."""
        section = _yaml(Path(root) / CONFIG_FILE).get("repository") or {}
        url, branch = str(section.get("url") or "").strip(), str(section.get("branch") or "").strip()
        if not url.startswith("https://") or not branch:
            raise LaunchError(f"{CONFIG_FILE} must set repository.url (an https URL) and repository.branch; "
                              f"found url={url!r}, branch={branch!r}")
        return cls(url.rstrip("/").removesuffix(".git"), branch)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.lower()

    @property
    def owner(self) -> str:
        return urlsplit(self.url).path.strip("/").split("/")[0]

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.strip("/").split("/")[-1]

    def blob(self, path: str) -> str:
        """The web page of ``path`` (relative to the repository root) on the branch."""
        return f"{self.url}/blob/{self.branch}/{path}"


def launch_config(root: Path) -> dict:
    """The ``launch_buttons`` section of ``root/_config.yml``."""
    return dict(_yaml(Path(root) / CONFIG_FILE).get("launch_buttons") or {})


def course_version(root: Path) -> str:
    """The package version of ``root/pyproject.toml`` (the course's release)."""
    project = tomllib.loads((Path(root) / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    version = str(project.get("version") or "")
    if not version:
        raise LaunchError("pyproject.toml has no project.version")
    return version


def package_source(root: Path) -> str:
    """Where the install cell gets the package: the release tag of the repository,
    ``git+https://github.com/<owner>/<repo>@v<version>``."""
    return f"git+{Repository.from_config(root).url}@v{course_version(root)}"


# ------------------------------------------------------------------------------------------------
# The install cell
# ------------------------------------------------------------------------------------------------

INSTALL_TEMPLATE = '''\
# Installs the course's package where it is missing (e.g. on Colab): `dgm`, and `coursework` with
# the checks, from release v{version} of
# {url}.
# Where the package is installed (the course's environment, Binder, grading) this does nothing.
# {variable}=<a folder or a pip URL> installs it from there instead (a checkout, a fork).
import importlib.util

if importlib.util.find_spec("dgm") is None or importlib.util.find_spec("coursework") is None:
    import os
    import pathlib
    import subprocess
    import sys

    source = os.environ.get("{variable}") or "{source}"
    if pathlib.Path(source).is_dir():
        source = pathlib.Path(source).resolve().as_uri()
    pip = subprocess.run([sys.executable, "-m", "pip", "install", f"{package} @ {{source}}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"pip could not install the course's package from {{source}}:\\n{{pip.stderr[-4000:]}}")
    importlib.invalidate_caches()
    if importlib.util.find_spec("dgm") is None:   # pip fell back to a user install made after start-up
        import site
        site.addsitedir(site.getusersitepackages())
        importlib.invalidate_caches()
    if importlib.util.find_spec("dgm") is None or importlib.util.find_spec("coursework") is None:
        raise RuntimeError("pip installed the course's package where this kernel does not look: "
                           "restart the kernel, then run this cell again")
    print(f"Installed the course's package from {{source}}.")'''


def install_cell_source(root: Path) -> str:
    """The install cell's code for the course at ``root`` (see the module docstring)."""
    return INSTALL_TEMPLATE.format(version=course_version(root), url=Repository.from_config(root).url,
                                   variable=SOURCE_VARIABLE, source=package_source(root), package=PACKAGE)


def install_cell(root: Path, *, graded: bool) -> nbformat.NotebookNode:
    """The install cell; ``graded``: with the nbgrader metadata of a locked, read-only cell (an
    exercise's source notebook), else plain (a chapter notebook)."""
    cell = nbformat.v4.new_code_cell(install_cell_source(root))
    cell.id = INSTALL_ID
    if graded:
        cell.metadata["nbgrader"] = {"grade": False, "grade_id": INSTALL_ID, "locked": True, "schema_version": 3,
                                     "solution": False, "task": False}
    return cell


def _is_install_cell(cell) -> bool:
    return cell.get("id") == INSTALL_ID or cell.metadata.get("nbgrader", {}).get("grade_id") == INSTALL_ID


def put_install_cell(nb: nbformat.NotebookNode, cell: nbformat.NotebookNode) -> bool:
    """Make ``cell`` the first code cell of ``nb`` (in place), replacing an earlier install cell
    wherever it is; the markdown cells before the first code cell stay first. Returns whether
    ``nb`` changed."""
    before = nbformat.writes(nb)
    cells = [c for c in nb.cells if not _is_install_cell(c)]
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    nb.cells = cells[:first_code] + [cell] + cells[first_code:]
    return nbformat.writes(nb) != before


def install_cell_problems(root: Path, assignment_ids: list[str]) -> list[str]:
    """Source notebooks whose first code cell is not the install cell for ``root``'s settings."""
    from autograder.course import source_notebook

    wanted = install_cell(root, graded=True)
    problems = []
    for a in assignment_ids:
        nb = nbformat.read(source_notebook(root, a), as_version=4)
        if put_install_cell(nb, wanted):
            problems.append(f"solutions/{a}/{a}.ipynb (its install cell is not the one {CONFIG_FILE} and "
                            "pyproject.toml give)")
    return problems


def write_install_cells(root: Path, assignment_ids: list[str]) -> list[str]:
    """Put the install cell into each ``solutions/<a>/<a>.ipynb``; returns the assignments changed."""
    from autograder.course import source_notebook
    from autograder.release import write_notebook

    wanted = install_cell(root, graded=True)
    changed = []
    for a in assignment_ids:
        path = source_notebook(root, a)
        nb = nbformat.read(path, as_version=4)
        if put_install_cell(nb, wanted):
            write_notebook(nb, path)
            changed.append(a)
    return changed


# ------------------------------------------------------------------------------------------------
# Launch links
# ------------------------------------------------------------------------------------------------


def launch_links(repository: Repository, config: dict, path: str) -> dict[str, str]:
    """Host name → the URL that opens ``path`` (relative to the repository root) there, for each
    host ``config`` (``launch_buttons`` of ``_config.yml``) names, in sphinx-book-theme's forms:

    * Binder: ``<binderhub>/v2/gh/<owner>/<repo>/<branch>?urlpath=lab/tree/<path>``;
    * JupyterHub (nbgitpuller): ``<hub>/hub/user-redirect/git-pull?repo=<url>&urlpath=lab/tree/<repo>/<path>&branch=<branch>``;
    * Colab (GitHub only): ``<colab>/github/<owner>/<repo>/blob/<branch>/<path>``.
    """
    interface = config.get("notebook_interface", "classic")
    if interface not in INTERFACE_PREFIX:
        raise LaunchError(f"launch_buttons.notebook_interface must be one of {sorted(INTERFACE_PREFIX)}, not {interface!r}")
    prefix = INTERFACE_PREFIX[interface]
    github = repository.host == "github.com"
    links: dict[str, str] = {}
    binderhub = str(config.get("binderhub_url") or "").strip("/")
    if binderhub:
        where = (f"gh/{repository.owner}/{repository.name}" if github else f"git/{quote(repository.url, safe='')}")
        links["Binder"] = f"{binderhub}/v2/{where}/{repository.branch}?urlpath={prefix}/{path}"
    jupyterhub = str(config.get("jupyterhub_url") or "").strip("/")
    if jupyterhub:
        query = urlencode({"repo": repository.url, "urlpath": f"{prefix}/{repository.name}/{path}",
                           "branch": repository.branch}, safe="/")
        links["JupyterHub"] = f"{jupyterhub}/hub/user-redirect/git-pull?{query}"
    colab = str(config.get("colab_url") or "").strip("/")
    if colab and github:
        links["Colab"] = f"{colab}/github/{repository.owner}/{repository.name}/blob/{repository.branch}/{path}"
    return links


def chapter_notebook_path(root: Path, stem: str) -> Path:
    return Path(root) / CHAPTER_NOTEBOOK_DIR / f"{stem}.ipynb"


def page_notebooks(root: Path, pagename: str) -> list[tuple[str, str]]:
    """The notebooks the website's page ``pagename`` (e.g. ``book/01-elbo``) offers to launch, as
    (``"exercise"`` | ``"chapter"``, path relative to ``root``), each only where the file exists.

    A page's exercise is the assignment of the same name (``solutions/01-elbo`` → released as
    ``exercises/01-elbo/01-elbo.ipynb``: the chapter's declaration in ``coursework`` names it);
    its notebook form is ``notebooks/<name>.ipynb``.
    """
    root = Path(root)
    stem = pagename.rsplit("/", 1)[-1]
    found = []
    for kind, path in (("exercise", release_notebook(root, stem)), ("chapter", chapter_notebook_path(root, stem))):
        if path.is_file():
            found.append((kind, path.relative_to(root).as_posix()))
    return found


# ------------------------------------------------------------------------------------------------
# Chapters as notebooks
# ------------------------------------------------------------------------------------------------


def toc_documents(root: Path) -> list[str]:
    """Every document of ``root/_toc.yml`` (``book/01-elbo``), root first."""
    toc = _yaml(Path(root) / TOC_FILE)
    found = [toc["root"]] if "root" in toc else []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for key, value in node.items():
                if key != "root":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return found


def runnable_pages(root: Path) -> list[str]:
    """The stems of the website's pages that have code to run: MyST notebooks ``book/<stem>.md``
    in the toc with at least one code cell (the chapters; not the intro, notation or slips pages)."""
    stems = []
    for doc in toc_documents(root):
        path = Path(root) / f"{doc}.md"
        if path.is_file() and re.search(r"^```\{code-cell\}", path.read_text(encoding="utf-8"), re.M):
            stems.append(Path(doc).name)
    return stems


ROLE = re.compile(r"\{(?P<role>[a-z][\w:-]*)\}`(?P<content>[^`]+)`")
TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=[ \t]*$", re.M)
DISPLAY_MATH = re.compile(r"\$\$(?P<body>.*?)\$\$", re.S)
MATH_LABEL = re.compile(r"[ \t]*\((?P<label>[^()\s]+)\)")
DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<argument>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                       re.M | re.S)
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$", re.M)
CODE_FENCE = re.compile(r"^(`{3,}).*?^\1[ \t]*$", re.M | re.S)


def _split_titled(content: str) -> tuple[str | None, str]:
    """``text <target>`` → (text, target); ``target`` → (None, target)."""
    found = re.fullmatch(r"(?s)(?P<text>.*?)\s*<(?P<target>[^<>]+)>", content.strip())
    return (found["text"].strip(), found["target"].strip()) if found else (None, content.strip())


@dataclass
class MystPage:
    """What the conversion of one page needs to know about the whole page and the course."""

    root: Path
    document: str                      # e.g. "book/01-elbo"
    repository: Repository
    config: dict
    headings: dict[str, str]           # target label → the title of the heading it stands before
    equations: dict[str, int]          # equation label → its number on the page, from 1

    def doc_link(self, content: str) -> str:
        text, target = _split_titled(content)
        folder = posixpath.dirname(self.document)
        path = posixpath.normpath(posixpath.join(folder, target)) if not target.startswith("/") else target.lstrip("/")
        source = Path(self.root) / f"{path}.md"
        if text is None:
            prose = CODE_FENCE.sub("", source.read_text(encoding="utf-8")) if source.is_file() else ""
            titles = HEADING.findall(prose)
            text = titles[0] if titles else target
        return f"[{text}]({self.repository.blob(path + '.md')})"

    def download_link(self, content: str) -> str:
        text, target = _split_titled(content)
        text = text or posixpath.basename(target)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(self.document), target))
        relative = posixpath.relpath(path, CHAPTER_NOTEBOOK_DIR)
        link = f"[{text}]({relative})"
        colab = launch_links(self.repository, self.config, path).get("Colab") if path.endswith(".ipynb") else None
        return f"{link} ([open it in Colab]({colab}))" if colab else link

    def role(self, match: re.Match) -> str:
        role, content = match["role"], match["content"]
        if role == "eq":
            label = content.strip()
            number = self.equations.get(label)
            return f"[({number})](#{label})" if number else f"({label})"
        if role == "ref":
            text, label = _split_titled(content)
            text = text or self.headings.get(label, label)
            return f"[{text}](#{label})" if label in self.headings else text
        if role == "doc":
            return self.doc_link(content)
        if role == "download":
            return self.download_link(content)
        if role == "math":
            return f"${content}$"
        return _split_titled(content)[0] or content   # any other role: its text


def _directive(match: re.Match) -> str:
    """A MyST directive in a Markdown cell as a notebook renders it: ``{math}`` as display math,
    anything else (a note, a warning, a figure...) as a quote headed by its name and argument."""
    name, argument = match["name"], match["argument"].strip()
    body = [ln for ln in match["body"].rstrip("\n").split("\n") if not re.match(r"^:[\w-]+:", ln)]
    if name == "math":
        return "$$\n" + "\n".join(body).strip("\n") + "\n$$"
    title = f"**{name.split(':')[-1].capitalize()}**" + (f" {argument}" if argument else "")
    return "\n".join(["> " + title, ">"] + [f"> {ln}".rstrip() for ln in body])


def myst_to_markdown(text: str, page: MystPage) -> str:
    """One Markdown cell of a MyST page in the Markdown a notebook renders.

    * ``(label)=`` targets become HTML anchors, so links to them work inside the notebook;
    * labelled display math ``$$ ... $$ (label)`` gets its number on the page as ``\\tag{n}``
      and an anchor, and ``{eq}`label``` becomes a link ``(n)``; the page's equations are numbered
      from 1 (the website numbers them on from the previous pages);
    * ``{ref}`` links to an anchor of the page (its heading's title as text);
    * ``{doc}`` links to the page's source on the repository's web site (no site URL is set);
    * ``{download}`` links to the file, relative to ``notebooks/``, and to Colab for a notebook;
    * directives become a quote (or display math for ``{math}``); other roles keep their text.
    """
    text = DIRECTIVE.sub(_directive, text)
    pieces, position = [], 0
    for match in DISPLAY_MATH.finditer(text):
        label = MATH_LABEL.match(text, match.end())
        if label is None or label["label"] not in page.equations:
            continue
        pieces.append(text[position:match.start()])
        line_start = text.rfind("\n", 0, match.start()) + 1
        indent = text[line_start:match.start()] if not text[line_start:match.start()].strip() else ""
        name = label["label"]
        pieces.append(f'<a id="{name}"></a>\n\n{indent}$$' + match["body"].rstrip()
                      + f"\n{indent}\\tag{{{page.equations[name]}}}\n{indent}$$")
        position = label.end()
    text = "".join(pieces) + text[position:]
    text = TARGET.sub(lambda m: f'<a id="{m["label"]}"></a>', text)
    return ROLE.sub(page.role, text)


def _page_labels(markdown: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """The page's targets (label → the next heading's title) and its labelled display equations
    (label → number from 1, in page order)."""
    headings: dict[str, str] = {}
    equations: dict[str, int] = {}
    for text in markdown:
        for target in TARGET.finditer(text):
            heading = HEADING.match(text, target.end() + 1) if target.end() < len(text) else None
            headings[target["label"]] = heading["title"] if heading else target["label"]
        for match in DISPLAY_MATH.finditer(text):
            label = MATH_LABEL.match(text, match.end())
            if label:
                equations.setdefault(label["label"], len(equations) + 1)
    return headings, equations


def chapter_notebook(root: Path, stem: str) -> nbformat.NotebookNode:
    """``book/<stem>.md`` as a notebook: jupytext's reading of the MyST file, its Markdown made
    renderable (:func:`myst_to_markdown`), cell tags kept (other cell metadata is the website's),
    a first note saying where it comes from, and the install cell before the first code cell."""
    import jupytext

    root = Path(root)
    document = f"book/{stem}"
    source = root / f"{document}.md"
    parsed = jupytext.reads(source.read_text(encoding="utf-8"), fmt="myst")
    markdown = [c.source for c in parsed.cells if c.cell_type == "markdown"]
    headings, equations = _page_labels(markdown)
    repository = Repository.from_config(root)
    page = MystPage(root, document, repository, launch_config(root), headings, equations)

    note = nbformat.v4.new_markdown_cell(
        f"<!-- Made from {document}.md by `python -m autograder release` (autograder/launch.py): "
        "edit that file, not this one. -->\n"
        f"*This is the course's page [{document}.md]({repository.blob(document + '.md')}) as a notebook. "
        "Run the cells in order; the first code cell installs the course's package where it is missing "
        "(e.g. on Colab).*")
    cells = [note]
    for cell in parsed.cells:
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(myst_to_markdown(cell.source, page))
        elif cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(cell.source)
            if cell.metadata.get("tags"):
                new.metadata["tags"] = list(cell.metadata["tags"])
        else:
            new = nbformat.v4.new_raw_cell(cell.source)
        cells.append(new)
    nb = nbformat.v4.new_notebook()
    nb.metadata = nbformat.from_dict({
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    nb.cells = cells
    put_install_cell(nb, install_cell(root, graded=False))
    for index, cell in enumerate(nb.cells):
        if cell.get("id") != INSTALL_ID:
            cell.id = f"{stem}-{index:03d}"
    return nb


def chapter_stems(root: Path, stems: list[str] | None = None) -> list[str]:
    """The pages that get a notebook form: every runnable page, or those among ``stems``."""
    pages = runnable_pages(root)
    return pages if stems is None else [s for s in pages if s in set(stems)]


def write_chapter_notebooks(root: Path, stems: list[str] | None = None) -> list[Path]:
    """Write ``notebooks/<stem>.ipynb`` for each runnable page (those in ``stems`` only, when
    given); returns the paths written. A notebook whose page left the toc is removed."""
    from autograder.release import write_notebook

    root = Path(root)
    chosen = chapter_stems(root, stems)
    written = []
    for stem in chosen:
        path = chapter_notebook_path(root, stem)
        write_notebook(chapter_notebook(root, stem), path)
        written.append(path)
    if stems is None:
        keep = set(chosen)
        for old in sorted((root / CHAPTER_NOTEBOOK_DIR).glob("*.ipynb")):
            if old.stem not in keep:
                old.unlink()
    return written


def stale_chapter_notebooks(root: Path, stems: list[str] | None = None) -> list[str]:
    """The chapter notebooks that are missing, differ from a fresh conversion of their page, or
    belong to no runnable page (relative paths with the reason); [] when all are current."""
    import tempfile

    from autograder.release import write_notebook

    root = Path(root)
    chosen = chapter_stems(root, stems)
    stale = []
    with tempfile.TemporaryDirectory(prefix="dgm-chapter-notebooks-") as tmp:
        for stem in chosen:
            committed = chapter_notebook_path(root, stem)
            name = committed.relative_to(root).as_posix()
            fresh = Path(tmp) / f"{stem}.ipynb"
            write_notebook(chapter_notebook(root, stem), fresh)
            if not committed.is_file():
                stale.append(f"{name} (missing)")
            elif committed.read_bytes() != fresh.read_bytes():
                stale.append(f"{name} (differs from book/{stem}.md)")
    if stems is None:
        for extra in sorted((root / CHAPTER_NOTEBOOK_DIR).glob("*.ipynb")):
            if extra.stem not in set(chosen):
                stale.append(f"{extra.relative_to(root).as_posix()} (no page book/{extra.stem}.md with code in {TOC_FILE})")
    return stale
