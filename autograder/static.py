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

_SHELL = re.compile(r"^(\s*)!.*$")
_LINE_MAGIC = re.compile(r"^(\s*)%(?!%)(\w+)(?:\s+-\S+(?:\s+[^-\s]\S*)?)*\s*(.*)$")
_CODE_MAGICS = {"time", "timeit", "prun", "debug", "capture"}   # line magics whose argument is Python code
_CELL_MAGIC = re.compile(r"^\s*%%\w+.*$")
_DYNAMIC = {"__import__", "exec", "eval", "compile", "importlib", "globals", "vars", "__builtins__", "builtins",
            "get_ipython", "__loader__", "__spec__"}
#: attributes that reach code or modules by name: torch.__dict__["distributions"], shell.run_cell(...)
_DYNAMIC_ATTRIBUTES = {"__dict__", "__getattribute__", "__globals__", "__builtins__", "run_cell", "run_line_magic",
                       "run_cell_magic", "ex", "ev", "user_ns", "import_module"}
DYNAMIC = "dynamic code (__import__, importlib, exec, eval, globals, getattr with a module name)"


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


def parse(source: str) -> ast.Module | None:
    """The AST of a cell as IPython would run it (:func:`_strip_magics`), or None if it does not parse."""
    try:
        return ast.parse(_strip_magics(source))
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


def _dynamic_or_forbidden(node: ast.AST, alias: Mapping[str, str], modules: Sequence[str]) -> list[str]:
    """What a piece of code (a function body, or a module-level statement) reaches among ``modules``,
    and whether it uses dynamic code; one entry per finding."""
    found: list[str] = []

    def add(item: str) -> None:
        if item not in found:
            found.append(item)

    for sub in ast.walk(node):
        chain = None
        if isinstance(sub, ast.Attribute):
            chain = _dotted(sub)
            if sub.attr in _DYNAMIC_ATTRIBUTES:
                add(DYNAMIC)
        elif isinstance(sub, ast.Name):
            chain = sub.id
            if sub.id in _DYNAMIC:
                add(DYNAMIC)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            m = _matches(sub.value, modules)
            if m:
                add(f"the module name {m!r} as a string")
        elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in ("getattr", "setattr") \
                and len(sub.args) >= 2:
            target = _dotted(sub.args[0])
            attr = _literal_string(sub.args[1])
            if target and attr is not None:  # getattr(torch, "distri" + "butions")
                m = _matches(_resolve(target, alias) + "." + attr, modules)
                if m:
                    add(m)
        if chain:
            resolved = _resolve(chain, alias)
            m = _matches(resolved, modules)
            if m:
                add(m)
            if resolved.split(".")[0] in ("importlib", "sys") and ("modules" in resolved or "import" in resolved):
                add(DYNAMIC)
    return found


def _literal_string(node: ast.AST) -> str | None:
    """The value of a string built from literals only (``"a"``, ``"a" + "b"``, ``f"a{'b'}"``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal_string(node.left), _literal_string(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            inner = v.value if isinstance(v, ast.FormattedValue) else v
            text = _literal_string(inner)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    return None


def forbidden_uses(sources: Sequence[str], name: str, modules: Sequence[str]) -> list[str]:
    """What the function ``name`` (defined in one of the answer cells ``sources``), the helpers it
    calls and the module-level names it reads refer to among ``modules``; an empty list when nothing.

    Module-level names bound by code that reaches a forbidden module or uses dynamic code
    (``D = importlib.import_module(...)``) are *tainted*: a function that reads one is charged too.
    """
    trees = [t for t in (parse(s) for s in sources) if t is not None]
    alias = _aliases(trees)
    tainted: dict[str, list[str]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                if value is None:
                    continue
                hits = _dynamic_or_forbidden(value, alias, modules)
                if hits:
                    for t in targets:
                        for n in ast.walk(t):
                            if isinstance(n, ast.Name):
                                tainted[n.id] = hits
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
    def add(items: Iterable[str]) -> None:
        for h in items:
            if h not in found:
                found.append(h)

    def top_level(tree: ast.Module) -> list[str]:
        hits: list[str] = []
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
                hits += _dynamic_or_forbidden(node, alias, modules)
        return hits

    if name not in functions:
        # not a plain `def` (built by a factory, bound some other way): nothing may reach them
        for tree in trees:
            add(_dynamic_or_forbidden(tree, alias, modules))
        return found
    for tree in trees:  # dynamic code at the top of the cell that defines the function
        if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body) \
                or any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
                       for n in tree.body):
            add(h for h in top_level(tree) if h == DYNAMIC)
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in functions:
            continue
        seen.add(current)
        hits = _dynamic_or_forbidden(functions[current], alias, modules)
        for node in ast.walk(functions[current]):
            if isinstance(node, ast.Name):
                if node.id in functions:
                    todo.append(node.id)
                hits += tainted.get(node.id, [])
        add(hits)
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
