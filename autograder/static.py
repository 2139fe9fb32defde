"""Reading students' answer cells without running them: the allow-list of an answer, and AST similarity.

* :func:`forbidden_uses` — what the function a task grades (or a function, class or name of the
  notebook it reaches, through any of their bindings in any answer cell) uses outside its task's
  allow-list: the modules the task allows (``math`` and ``torch`` unless the chapter says otherwise)
  minus the chapter's forbidden ones (``torch.distributions``, ``dgm.divergences``...), names the
  notebook defines, builtins that are not dynamic. Dynamic code (``exec``, ``getattr`` with a
  computed name, ``sys.modules``, ``importlib``, ``__dict__``...) is refused wherever the answer
  reaches it and anywhere in the answer cells' top-level code. The rule itself, shared with the
  checks a student runs in their own kernel, is :mod:`coursework._allowlist`.
* :func:`normalise` — a canonical text of a piece of code for similarity: comments, docstrings,
  type annotations and blank lines dropped, identifiers renamed in order of first appearance,
  literals kept. Two answers that differ only in names, comments and layout normalise to the same
  text; :func:`similarity` compares two normalised texts (1.0 = identical structure).
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Sequence

from coursework._allowlist import DEFAULT_ALLOWED, DYNAMIC, notebook_uses

__all__ = ["DYNAMIC", "forbidden_uses", "normalise", "parse", "similarity"]

_SHELL = re.compile(r"^(\s*)!.*$")
_LINE_MAGIC = re.compile(r"^(\s*)%(?!%)(\w+)(?:\s+-\S+(?:\s+[^-\s]\S*)?)*\s*(.*)$")
_CODE_MAGICS = {"time", "timeit", "prun", "debug", "capture"}   # line magics whose argument is Python code
_CELL_MAGIC = re.compile(r"^\s*%%\w+.*$")


def _strip_magics(source: str) -> str:
    """Python that IPython would run for ``source``: a line magic's code argument is kept (``%time
    import x`` runs ``import x``), shell lines and cell-magic headers are blanked."""
    lines = []
    for line in source.splitlines():
        if _SHELL.match(line) or _CELL_MAGIC.match(line):
            lines.append("")
            continue
        match = _LINE_MAGIC.match(line)
        if match:
            indent, magic, rest = match.groups()
            if magic not in _CODE_MAGICS:
                lines.append("")
                continue
            try:
                ast.parse(rest.strip() or "pass")
                lines.append(indent + (rest.strip() or "pass"))
            except SyntaxError:
                lines.append("")
            continue
        lines.append(line)
    return "\n".join(lines)


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse(source: str) -> ast.Module | None:
    """The AST of a cell as IPython would run it (:func:`_strip_magics`), or None if it does not parse.
    Lone surrogates (which Python runs in comments and strings, but cannot encode) read as U+FFFD."""
    try:
        return ast.parse(_SURROGATE.sub("\ufffd", _strip_magics(source)))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def forbidden_uses(sources: Sequence[str], name: str, forbidden: Sequence[str],
                   allowed: Sequence[str] = DEFAULT_ALLOWED, setup: Sequence[str] = ()) -> list[str]:
    """What the function ``name`` (defined in the answer cells ``sources``), and all it reaches,
    uses outside its task's allow-list: ``allowed`` modules but for the ``forbidden`` ones in them,
    names the answer cells define, names the set-up cells ``setup`` give (their imports count as what
    they import), builtins that are not dynamic; and any dynamic code at the top level of an answer
    cell. One text per finding (the rule and its readings: :mod:`coursework._allowlist`); [] when
    the answer keeps to the rule. Cells that do not parse are left out (they did not run either)."""
    answers = [t for t in (parse(s) for s in sources) if t is not None]
    given = [t for t in (parse(s) for s in setup) if t is not None]
    return notebook_uses(answers, name, allowed=allowed, forbidden=forbidden, setup=given)


# --------------------------------------------------------------------------------------------
# Similarity
# --------------------------------------------------------------------------------------------


class _Normaliser(ast.NodeTransformer):
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def rename(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = f"v{len(self.names)}"
        return self.names[name]

    def _strip_docstring(self, node):
        body = getattr(node, "body", None)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    def visit_Module(self, node):
        self._strip_docstring(node)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node):
        self._strip_docstring(node)
        node.name = self.rename(node.name)
        node.returns = None
        node.decorator_list = []
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_arg(self, node):
        node.arg = self.rename(node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node):
        node.id = self.rename(node.id)
        return node

    def visit_ClassDef(self, node):
        self._strip_docstring(node)
        node.name = self.rename(node.name)
        node.decorator_list = []
        return self.generic_visit(node)

    def visit_alias(self, node):
        if node.asname:
            node.asname = self.rename(node.asname)
        return node

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self.rename(node.name)
        return self.generic_visit(node)

    def visit_Global(self, node):
        node.names = [self.rename(n) for n in node.names]
        return node

    visit_Nonlocal = visit_Global

    def visit_AnnAssign(self, node):
        if node.value is None:
            return None
        return self.generic_visit(ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno))


def normalise(source: str) -> str:
    """A canonical text of ``source`` (see the module docstring); '' when it does not parse."""
    tree = parse(source)
    if tree is None:
        return ""
    try:
        tree = _Normaliser().visit(tree)
        ast.fix_missing_locations(tree)
        return ast.unparse(tree)
    except RecursionError:  # an expression nested hundreds of levels deep: not comparable
        return ""
    except Exception:  # noqa: BLE001 - unusual trees
        try:
            return ast.dump(tree)
        except RecursionError:
            return ""


def similarity(a: str, b: str) -> float:
    """Similarity of two normalised texts in [0, 1], by tokens (1.0: the same structure)."""
    if not a or not b:
        return 0.0
    ta, tb = re.findall(r"\w+|[^\w\s]", a), re.findall(r"\w+|[^\w\s]", b)
    if ta == tb:
        return 1.0
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()
