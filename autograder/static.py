"""Reading students' answer cells without running them: forbidden calls and AST similarity.

* :func:`forbidden_uses` — does the function a task grades (or a helper it calls, or a module-level
  alias it uses) refer to a module the exercise re-implements (``dgm.divergences``,
  ``torch.distributions``...)? Imports are followed through aliases (``import torch.distributions
  as D``, ``from dgm import divergences``); dynamic imports (``__import__``, ``importlib``,
  ``exec``/``eval``, ``sys.modules``) count as forbidden too, since they exist to hide a name.
* :func:`normalise` — a canonical text of a piece of code for similarity: comments, docstrings,
  type annotations and blank lines dropped, identifiers renamed in order of first appearance,
  literals kept. Two answers that differ only in names, comments and layout normalise to the same
  text; :func:`similarity` compares two normalised texts (1.0 = identical structure).
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence

_MAGIC = re.compile(r"^\s*[%!].*$", re.MULTILINE)
_DYNAMIC = {"__import__", "exec", "eval", "compile", "importlib", "globals", "vars", "__builtins__", "builtins"}


def parse(source: str) -> ast.Module | None:
    """The AST of a cell (IPython magics and shell lines blanked), or None if it does not parse."""
    try:
        return ast.parse(_MAGIC.sub("", source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _aliases(trees: Iterable[ast.Module]) -> dict[str, str]:
    """name → dotted module path, from every import and simple module-level alias assignment."""
    alias: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        alias[a.asname] = a.name
                    else:
                        alias[a.name.split(".")[0]] = a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    alias[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                chain = _dotted(node.value)
                if chain is not None:
                    head, _, rest = chain.partition(".")
                    if head in alias:
                        alias[node.targets[0].id] = alias[head] + ("." + rest if rest else "")
    return alias


def _resolve(chain: str, alias: Mapping[str, str]) -> str:
    head, _, rest = chain.partition(".")
    if head in alias:
        return alias[head] + ("." + rest if rest else "")
    return chain


def _matches(path: str, modules: Sequence[str]) -> str | None:
    for m in modules:
        if path == m or path.startswith(m + "."):
            return m
        # `from dgm import divergences` → "dgm.divergences"; attribute access `dgm.divergences.x`
    return None


def forbidden_uses(sources: Sequence[str], name: str, modules: Sequence[str]) -> list[str]:
    """What the function ``name`` (defined in one of the answer cells ``sources``), the helpers it
    calls and the names it reads refer to among ``modules``; an empty list when nothing."""
    trees = [t for t in (parse(s) for s in sources) if t is not None]
    alias = _aliases(trees)
    functions: dict[str, ast.AST] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                functions[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and isinstance(node.value, ast.Lambda):
                functions[node.targets[0].id] = node.value
    found: list[str] = []
    # imports of a forbidden module anywhere in the answers
    for tree in trees:
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                m = _matches(n, modules)
                if m and m not in found:
                    found.append(m)
    if name not in functions:
        return found
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in functions:
            continue
        seen.add(current)
        for node in ast.walk(functions[current]):
            chain = None
            if isinstance(node, ast.Attribute):
                chain = _dotted(node)
            elif isinstance(node, ast.Name):
                chain = node.id
                if node.id in functions:
                    todo.append(node.id)
                if node.id in _DYNAMIC and "dynamic code (__import__, importlib, exec, eval, globals)" not in found:
                    found.append("dynamic code (__import__, importlib, exec, eval, globals)")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                m = _matches(node.value, modules)
                if m and f"the module name {m!r} as a string" not in found:
                    found.append(f"the module name {m!r} as a string")
            if chain:
                resolved = _resolve(chain, alias)
                m = _matches(resolved, modules)
                if m and m not in found:
                    found.append(m)
                if resolved.split(".")[0] in ("importlib", "sys") and ("modules" in resolved or "import" in resolved) \
                        and "dynamic code (__import__, importlib, exec, eval, globals)" not in found:
                    found.append("dynamic code (__import__, importlib, exec, eval, globals)")
    return found


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
