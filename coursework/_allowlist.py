"""What an answer of kind ``function`` may use: an allow-list, shared by the grader and the checks.

An answer function, and every function, class and name of the notebook it reaches, may use only

* the modules its task allows (:attr:`coursework.registry.Task.allowed`: the chapter's ``allowed``,
  ``math`` and ``torch`` unless it says otherwise, plus the task's own extras), except

  - the chapter's ``forbidden`` modules, which stay forbidden inside an allowed one
    (``torch.distributions`` under ``torch`` in Exercise 1),
  - private names of an allowed module (``torch._utils``),
  - the parts of an allowed module that load code or reach objects by name (``torch.hub``,
    ``torch.package``, ``torch.load``...);

* names the notebook defines: in its answer cells, or (imports counting as what they import) in its
  set-up cells;
* builtins, except those that run code or reach objects by name.

Anything dynamic fails: ``exec``, ``eval``, ``compile``, ``__import__``, ``globals()``, ``vars()``,
``locals()``, ``getattr``/``setattr``/``delattr`` with a name that is not a literal string,
``sys.modules``, ``importlib``, ``pkgutil``, ``inspect``, ``operator.attrgetter``/``methodcaller``,
``types.FunctionType``, introspection attributes (``__dict__``, ``__globals__``, ``__code__``,
``__subclasses__``, ``__builtins__``...) and IPython's shell (``get_ipython``). Everything else —
``sys``, ``os``, ``coursework``, ``dgm`` (but for modules a task allows explicitly), ``autograder``,
``numpy`` — is outside the allow-list by construction.

Two readers apply the rule and return their findings, one short text each (empty: the answer keeps
to the rule):

* :func:`notebook_uses` reads answer cells without running them (the grader, through
  :mod:`autograder.static`). Every binding of a name in any answer cell counts, wherever and however
  it is made (a later assignment, another cell, a walrus, a ``for`` target, ``with ... as``,
  ``import ... as``, ``global`` in another function, a class body, a default argument), so the
  verdict does not depend on the order of the cells. Dynamic code at the top level of any answer
  cell (or in a function that such code reaches) fails every function task too: it could rebind
  anything.
* :func:`live_uses` reads a function in this process (``check(...)`` in a student's kernel, the
  tests): its source where Python can find it (its byte code otherwise), and the objects its names
  are bound to now. What the function reaches is judged by the same rule, so a student sees the
  grader's verdict, except where the notebook's other cells change names the grader reads and
  the kernel has not run them (the grader also reads every binding, the kernel only the last).

Both readers also look at what an allowed module holds: ``torch.nn.functional.torch.distributions``
is ``torch.distributions``, and an attribute that leads out of the allowed modules (``.sys``,
``.importlib``, ``.distributions``) is refused on any object.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import sys
import textwrap
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: what a chapter allows when it does not say
DEFAULT_ALLOWED = ("math", "torch")
#: the first words of a finding about dynamic code
DYNAMIC = "dynamic code"
#: the finding about code nested too deeply to be read (thousands of levels): refused, since unread
TOO_DEEP = "code nested too deeply to be read (split the expression)"

#: builtins that run code or reach objects by name (``getattr``/``setattr``/``delattr`` are fine
#: with a literal string as the name)
DYNAMIC_BUILTINS = frozenset({"__import__", "exec", "eval", "compile", "globals", "vars", "locals", "breakpoint",
                              "__build_class__", "getattr", "setattr", "delattr"})
_BY_NAME = ("getattr", "setattr", "delattr")
#: dunder names a function may read (any other ``__x__`` name is introspection)
_SAFE_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__debug__", "__class__"})
#: attributes that reach code, frames, namespaces or modules by name
DYNAMIC_ATTRIBUTES = frozenset({
    "__dict__", "__globals__", "__builtins__", "__code__", "__closure__", "__subclasses__", "__getattribute__",
    "__getattr__", "__setattr__", "__delattr__", "__import__", "__loader__", "__spec__", "__bases__", "__base__",
    "__mro__", "__reduce__", "__reduce_ex__", "__defaults__", "__kwdefaults__", "__func__", "__self__",
    "__wrapped__", "__objclass__", "__init_subclass__", "__set_name__", "__class_getitem__", "__annotations__",
    "mro", "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "gi_frame", "gi_code", "cr_frame", "cr_code",
    "ag_frame", "ag_code", "tb_frame", "tb_next", "co_code", "co_consts", "co_names", "user_ns", "user_global_ns",
    "run_cell", "run_line_magic", "run_cell_magic", "ex", "ev", "import_module", "resolve_name", "attrgetter",
    "methodcaller", "locate", "_import_dotted_name", "find_spec", "load_module", "exec_module", "module_from_spec",
    "spec_from_file_location", "spec_from_loader", "get_referrers", "get_referents", "get_objects",
    "currentframe", "_getframe", "get_type_hints", "ForwardRef", "_eval_type",
})
#: modules and names (dotted paths) that load code or reach objects by name: dynamic wherever they are
DYNAMIC_PATHS = (
    "importlib", "pkgutil", "builtins", "inspect", "ctypes", "gc", "runpy", "code", "codeop", "marshal", "pickle",
    "copyreg", "pydoc", "IPython", "unittest.mock", "types.FunctionType", "types.LambdaType", "types.CodeType",
    "types.MethodType", "types.ModuleType", "types.new_class", "types.CellType", "operator.attrgetter",
    "operator.methodcaller", "sys.modules", "sys._getframe", "sys.meta_path", "sys.path_hooks", "sys.settrace",
    "sys.setprofile", "sys.path_importer_cache", "typing.get_type_hints", "torch.hub", "torch.package", "torch.load",
    "torch.serialization", "torch.jit.load", "torch.utils.cpp_extension", "torch.library",
)
#: attribute names that lead from an allowed module to one outside the allow-list (refused on any
#: object, since the object a call returns cannot be known without running it)
ESCAPE_ATTRIBUTES = frozenset({
    "sys", "os", "builtins", "importlib", "inspect", "gc", "ctypes", "pkgutil", "types", "pickle", "copyreg",
    "_compat_pickle", "pickletools", "operator", "_operator", "typing_extensions", "unittest", "mock",
    "multiprocessing", "mp", "python_multiprocessing", "subprocess", "concurrent", "threading", "_thread", "dis",
    "tokenize", "linecache", "traceback", "signal", "atexit", "shutil", "tempfile", "zipfile", "tarfile", "runpy",
    "code", "codeop", "marshal", "pydoc", "np", "numpy", "_osp", "posixpath", "glob",
    "platform", "torchgen", "dgm", "coursework", "autograder", "IPython", "hub", "package", "serialization",
    "cpp_extension", "library",
})
#: the course's own packages: never the notebook, whatever a function handed in says
_PROJECT = ("dgm", "coursework", "autograder")
#: the most distinct modules a name or expression is followed to (beyond: not followed further)
_MAX_PATHS = 64
#: the most items of a container (a global tuple, list or dict) that :func:`live_uses` looks into
_MAX_ITEMS = 2000


def _under(path: str, prefixes: Iterable[str]) -> str | None:
    """The first of ``prefixes`` that ``path`` is (``torch.distributions``) or lies under
    (``torch.distributions.Normal``); None when none."""
    for m in prefixes:
        if path == m or path.startswith(m + "."):
            return m
    return None


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def literal_string(node: ast.AST) -> str | None:
    """The value of a string built from literals only (``"a"``, ``"a" + "b"``, ``f"a{'b'}"``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = literal_string(node.left), literal_string(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            text = literal_string(v.value if isinstance(v, ast.FormattedValue) else v)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    return None


# --------------------------------------------------------------------------------------------
# The rule: what a dotted path may be
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    kind: str    # "forbidden", "dynamic", "outside", "undefined", "string"
    text: str


class Rule:
    """The verdict on a dotted path (``torch.nn.functional.softplus``) for one task."""

    def __init__(self, allowed: Sequence[str], forbidden: Sequence[str]) -> None:
        for what, value in (("allowed", allowed), ("forbidden", forbidden)):
            if isinstance(value, str) or not all(isinstance(m, str) and m for m in value):
                raise ValueError(f"{what} must be a sequence of module names; got {value!r}")
        self.allowed = tuple(dict.fromkeys(allowed))
        self.forbidden = tuple(dict.fromkeys(forbidden))
        #: attribute name → the forbidden module it leads to (``distributions`` → ``torch.distributions``)
        self.forbidden_attributes: dict[str, str] = {}
        for m in self.forbidden:
            for part in m.split(".")[1:]:
                self.forbidden_attributes.setdefault(part, m)
        #: private submodules of the allowed modules, by attribute name (``_utils``, ``_C``...)
        self.private_attributes = frozenset(
            name.rsplit(".", 1)[1] for name in list(sys.modules)
            if "." in name and _under(name, self.allowed) and name.rsplit(".", 1)[1].startswith("_")
            and not _is_dunder(name.rsplit(".", 1)[1]))

    def allowed_text(self) -> str:
        return ", ".join(self.allowed) if self.allowed else "none"

    def path(self, path: str, written: bool = True) -> Finding | None:
        """What is wrong with reaching ``path``; None when nothing. ``written``: the path as the
        code spells it (private names count), not the origin of an object (``torch._C._nn.softplus``)."""
        m = _under(path, self.forbidden)
        if m:
            return Finding("forbidden", m)
        d = _under(path, DYNAMIC_PATHS)
        if d:
            return Finding("dynamic", f"{DYNAMIC} ({d})")
        if path.startswith("."):
            return Finding("outside", f"a relative import ({path.split('.')[-1] or path})")
        root = _under(path, self.allowed)
        if root is None:
            return Finding("outside", f"{path} (outside the modules this task allows: {self.allowed_text()})")
        if written:
            for part in path[len(root) + 1:].split("."):
                if part.startswith("_") and not _is_dunder(part):
                    return Finding("outside", f"{path} (a private part of {root})")
        return None

    def attribute(self, name: str) -> Finding | None:
        """What is wrong with reading the attribute ``name`` of an object that is not known."""
        if name in DYNAMIC_ATTRIBUTES:
            return Finding("dynamic", f"{DYNAMIC} (the attribute {name})")
        if name in self.forbidden_attributes:
            return Finding("forbidden", self.forbidden_attributes[name])
        if name in ESCAPE_ATTRIBUTES or name in self.private_attributes:
            return Finding("outside", f"the attribute .{name} (it leads outside the modules this task allows: "
                                      f"{self.allowed_text()})")
        return None

    def string(self, text: str) -> Finding | None:
        m = _under(text.replace(":", ".").strip(), self.forbidden)
        return Finding("string", f"the module name {m!r} as a string") if m else None


_MISSING = object()


def _object_origin(value: Any) -> str | None:
    """Where an object comes from, as a dotted path: a function's or class's module and name, an
    instance's class; None for plain data (numbers, strings...) and what cannot say."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                          types.MethodWrapperType, types.WrapperDescriptorType, types.MethodDescriptorType,
                          types.ClassMethodDescriptorType)):
        module = getattr(value, "__module__", None)
        if not isinstance(module, str):
            owner = getattr(value, "__self__", None)
            if isinstance(owner, types.ModuleType):
                module = owner.__name__
            elif isinstance(owner, type):
                module = owner.__module__
        if not isinstance(module, str) or not module or module == "builtins":   # builtins: judged by name
            return None
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        return f"{module}.{name}" if isinstance(name, str) and name else module
    cls = type(value)
    module = getattr(cls, "__module__", None)
    if not isinstance(module, str) or module == "builtins":
        return None
    return f"{module}.{cls.__qualname__}"


def canonical(path: str) -> list[str]:
    """The real origins along ``path``, read from modules this process has already imported (never
    importing one): ``torch.nn.functional.torch.distributions.Normal`` leads to ``torch`` and then to
    ``torch.distributions``, whatever name an allowed module holds them under."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if isinstance(module, types.ModuleType):
            break
    else:
        return []
    found: list[str] = []
    obj: Any = module
    name = getattr(module, "__name__", None)
    if not isinstance(name, str):
        return []
    if name != ".".join(parts[:i]):
        found.append(".".join([name, *parts[i:]]))
    for j in range(i, len(parts)):
        rest = parts[j + 1:]
        try:
            value = vars(obj).get(parts[j], _MISSING)
        except TypeError:
            value = _MISSING
        if value is _MISSING:
            value = sys.modules.get(f"{name}.{parts[j]}", _MISSING)
        if value is _MISSING:
            break
        if isinstance(value, types.ModuleType):
            obj, name = value, getattr(value, "__name__", None)
            if not isinstance(name, str):
                break
            found.append(".".join([name, *rest]))
            continue
        origin = _object_origin(value)
        if origin:
            found.append(".".join([origin, *rest]))
        break
    return found


# --------------------------------------------------------------------------------------------
# Scopes and bindings of Python source
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Scope:
    kind: str                                   # "module", "function", "class", "comprehension"
    parent: "_Scope | None" = None
    declared_global: set = field(default_factory=set)
    declared_nonlocal: set = field(default_factory=set)
    names: set = field(default_factory=set)     # names bound in this scope
    bindings: dict = field(default_factory=dict)   # name → [_Binding]
    stars: list = field(default_factory=list)   # modules of ``from M import *`` (module scope)

    def root(self) -> "_Scope":
        s = self
        while s.parent is not None:
            s = s.parent
        return s


@dataclass(frozen=True, eq=False)
class _Binding:
    kind: str                       # "def", "class", "import", "value", "opaque"
    node: ast.AST | None = None     # the def or class, or the expression the name is bound to
    path: str | None = None         # what an import binds
    given: bool = False             # made by a set-up cell (the instructor's)


_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp)


class _Index:
    """What the readers look up in source: the scope each node runs in, the values stored into
    attributes (``x.attr = value``), and the ``getattr``-family calls with a literal name."""

    def __init__(self) -> None:
        self.scope_of: dict[int, _Scope] = {}
        self.patches: dict[str, list[ast.AST]] = {}
        self.literal_calls: set[int] = set()
        self.trees: list[ast.AST] = []   # kept alive, so that the ids above stay theirs


class _Builder:
    """Fills an :class:`_Index` and the scopes' bindings from one parsed cell."""

    def __init__(self, index: _Index, module: _Scope, given: bool) -> None:
        self.index, self.module, self.given = index, module, given
        self.subject: ast.AST | None = None   # the subject of the enclosing ``match``

    def build(self, tree: ast.AST) -> None:
        self.index.trees.append(tree)
        if isinstance(tree, ast.Module):
            self._declarations(tree.body, self.module)
            for stmt in tree.body:
                self.visit(stmt, self.module)
        else:
            self.visit(tree, self.module)

    # --- helpers ---------------------------------------------------------------------------

    def _declarations(self, body: list, scope: _Scope) -> None:
        todo = list(body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.Global):
                scope.declared_global.update(node.names)
            elif isinstance(node, ast.Nonlocal):
                scope.declared_nonlocal.update(node.names)
            if isinstance(node, _NESTED):
                continue
            todo.extend(ast.iter_child_nodes(node))

    def bind(self, scope: _Scope, name: str, binding: _Binding, walrus: bool = False) -> None:
        s = scope
        if walrus:
            while s.kind == "comprehension" and s.parent is not None:
                s = s.parent
        if name in s.declared_global:
            s = s.root()
        elif name in s.declared_nonlocal:
            t = s.parent
            while t is not None and t.kind != "function":
                t = t.parent
            s = t if t is not None else s.root()
        s.names.add(name)
        s.bindings.setdefault(name, []).append(binding)

    def value(self, node: ast.AST | None) -> _Binding:
        return _Binding("value" if node is not None else "opaque", node, given=self.given)

    def target(self, target: ast.AST, value: ast.AST | None, scope: _Scope, walrus: bool = False) -> None:
        """Bind every name in an assignment target to the whole value (conservative for unpacking)."""
        self.index.scope_of[id(target)] = scope
        if isinstance(target, ast.Name):
            self.bind(scope, target.id, self.value(value), walrus)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.target(elt, value, scope)
        elif isinstance(target, ast.Starred):
            self.target(target.value, value, scope)
        elif isinstance(target, ast.Attribute):
            self.index.patches.setdefault(target.attr, []).append(value)
            self.visit(target.value, scope)
        else:  # a subscript
            for child in ast.iter_child_nodes(target):
                self.visit(child, scope)

    def arguments(self, args: ast.arguments, outer: _Scope, inner: _Scope) -> None:
        positional = [*args.posonlyargs, *args.args]
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = [*zip(positional, defaults), *zip(args.kwonlyargs, args.kw_defaults)]
        pairs += [(a, None) for a in (args.vararg, args.kwarg) if a is not None]
        for d in [*args.defaults, *args.kw_defaults]:
            if d is not None:
                self.visit(d, outer)
        for a, default in pairs:
            self.index.scope_of[id(a)] = inner
            if a.annotation is not None:
                self.visit(a.annotation, outer)
            self.bind(inner, a.arg, self.value(default))

    # --- the walk --------------------------------------------------------------------------

    def visit(self, node: ast.AST, scope: _Scope) -> None:  # noqa: C901 - one case per kind of node
        index = self.index
        index.scope_of[id(node)] = scope
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                self.visit(d, scope)
            if node.returns is not None:
                self.visit(node.returns, scope)
            self.bind(scope, node.name, _Binding("def", node, given=self.given))
            inner = _Scope("function", scope)
            self._declarations(node.body, inner)
            self.arguments(node.args, scope, inner)
            for stmt in node.body:
                self.visit(stmt, inner)
        elif isinstance(node, ast.Lambda):
            inner = _Scope("function", scope)
            self.arguments(node.args, scope, inner)
            self.visit(node.body, inner)
        elif isinstance(node, ast.ClassDef):
            for child in [*node.decorator_list, *node.bases, *node.keywords]:
                self.visit(child, scope)
            self.bind(scope, node.name, _Binding("class", node, given=self.given))
            inner = _Scope("class", scope)
            self._declarations(node.body, inner)
            for stmt in node.body:
                self.visit(stmt, inner)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            inner = _Scope("comprehension", scope)
            for i, gen in enumerate(node.generators):
                self.visit(gen.iter, scope if i == 0 else inner)
                self.target(gen.target, gen.iter, inner)
                for cond in gen.ifs:
                    self.visit(cond, inner)
                index.scope_of[id(gen)] = inner
            for part in ("elt", "key", "value"):
                child = getattr(node, part, None)
                if child is not None:
                    self.visit(child, inner)
        elif isinstance(node, ast.Assign):
            self.visit(node.value, scope)
            for t in node.targets:
                self.target(t, node.value, scope)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            if node.value is not None:
                self.visit(node.value, scope)
            if isinstance(node, ast.AnnAssign):
                self.visit(node.annotation, scope)
            if node.value is not None or not isinstance(node.target, ast.Name):
                self.target(node.target, node.value, scope)
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                load = ast.Name(id=node.target.id, ctx=ast.Load())   # `x += v` reads x too
                ast.copy_location(load, node.target)
                index.trees.append(load)
                index.scope_of[id(load)] = scope
                node._reads = load  # type: ignore[attr-defined]
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.visit(node.iter, scope)
            self.target(node.target, node.iter, scope)
            for stmt in [*node.body, *node.orelse]:
                self.visit(stmt, scope)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.visit(item.context_expr, scope)
                if item.optional_vars is not None:
                    self.target(item.optional_vars, item.context_expr, scope)
                index.scope_of[id(item)] = scope
            for stmt in node.body:
                self.visit(stmt, scope)
        elif isinstance(node, ast.NamedExpr):
            self.visit(node.value, scope)
            self.target(node.target, node.value, scope, walrus=True)
        elif isinstance(node, ast.Import):
            for a in node.names:
                index.scope_of[id(a)] = scope
                if a.asname:
                    self.bind(scope, a.asname, _Binding("import", path=a.name, given=self.given))
                else:
                    top = a.name.split(".")[0]
                    self.bind(scope, top, _Binding("import", path=top, given=self.given))
        elif isinstance(node, ast.ImportFrom):
            module = "." * (node.level or 0) + (node.module or "")
            for a in node.names:
                index.scope_of[id(a)] = scope
                if a.name == "*":
                    scope.root().stars.append((module, self.given))
                    continue
                path = f"{module}.{a.name}" if module and not module.endswith(".") else module + a.name
                self.bind(scope, a.asname or a.name, _Binding("import", path=path, given=self.given))
        elif isinstance(node, ast.ExceptHandler):
            if node.type is not None:
                self.visit(node.type, scope)
            if node.name:
                self.bind(scope, node.name, self.value(node.type))
            for stmt in node.body:
                self.visit(stmt, scope)
        elif isinstance(node, ast.Match):
            self.visit(node.subject, scope)
            outer, self.subject = self.subject, node.subject
            for case in node.cases:
                self.visit(case, scope)
            self.subject = outer
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)):
            if node.name:
                self.bind(scope, node.name, self.value(self.subject))
            for child in ast.iter_child_nodes(node):
                self.visit(child, scope)
        elif isinstance(node, ast.MatchMapping):
            if node.rest:
                self.bind(scope, node.rest, self.value(self.subject))
            for child in ast.iter_child_nodes(node):
                self.visit(child, scope)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in _BY_NAME and len(node.args) >= 2 \
                    and literal_string(node.args[1]) is not None and not node.keywords:
                index.literal_calls.add(id(func))
                if func.id == "setattr" and len(node.args) >= 3:
                    index.patches.setdefault(literal_string(node.args[1]), []).append(node.args[2])
            for child in ast.iter_child_nodes(node):
                self.visit(child, scope)
        else:
            for child in ast.iter_child_nodes(node):
                self.visit(child, scope)


def _owner(scope: _Scope | None, name: str) -> _Scope | None:
    """The scope that binds ``name`` as read in ``scope`` (Python's rules: a class body is not seen
    from the functions in it); the module scope, or None when no scope binds it (a builtin, or
    undefined)."""
    s, first = scope, True
    while s is not None:
        if s.kind == "module":
            return s if name in s.names else None
        if name in s.declared_global:
            root = s.root()
            return root if name in root.names else None
        if name not in s.declared_nonlocal and (s.kind != "class" or first) and name in s.names:
            return s
        first = False
        s = s.parent
    return None


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------

FULL, TOP = "full", "top"
_KIND_ORDER = ("forbidden", "dynamic", "outside", "undefined", "string")


def _children(node: ast.AST, mode: str) -> list[ast.AST]:
    """The child nodes a reader walks into: all of them, but for the type annotations of the
    answer and what it reaches (never run when it is called; top-level code does evaluate them)."""
    children = list(ast.iter_child_nodes(node))
    if mode != FULL:
        return children
    skip: set[int] = set()
    if isinstance(node, ast.arg) and node.annotation is not None:
        skip.add(id(node.annotation))
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
        skip.add(id(node.returns))
    elif isinstance(node, ast.AnnAssign):
        skip.add(id(node.annotation))
    return [c for c in children if id(c) not in skip] if skip else children


class _Reader:
    """Walks what an answer reaches and collects findings. ``FULL``: the answer and what it reaches
    (the whole rule); ``TOP``: the top-level code of the answer cells (dynamic code only)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.index = _Index()
        self.findings: list[str] = []
        self._done: set[tuple[int, str]] = set()
        self._reached: set[tuple[int, str, str]] = set()
        self._paths: dict[int, frozenset[str]] = {}
        self._checked: set[tuple[str, str, bool]] = set()
        self._outside: list[str] = []
        self._kinds: dict[str, str] = {}

    # --- findings --------------------------------------------------------------------------

    def add(self, finding: Finding | None, mode: str) -> None:
        if finding is None:
            return
        if mode == TOP:
            if finding.kind != "dynamic" or finding.text in self.findings:
                return
            text = f"{finding.text} in an answer cell's top-level code"
        else:
            text = finding.text
        if finding.kind == "outside" and " (outside" in text:   # one finding per module path, not per use
            path = text.split(" (outside", 1)[0]
            for other in self._outside:
                if path == other or path.startswith(other + ".") or other.startswith(path + "."):
                    return
            self._outside.append(path)
        if text not in self.findings:
            self.findings.append(text)
            self._kinds[text] = finding.kind

    def sorted_findings(self) -> list[str]:
        """The findings, the most telling first (a forbidden module, dynamic code, then the rest),
        each kind in the order found."""
        return sorted(self.findings, key=lambda t: _KIND_ORDER.index(self._kinds.get(t, "string")))

    def check_path(self, path: str, mode: str, written: bool = True) -> None:
        key = (path, mode, written)
        if key in self._checked:
            return
        self._checked.add(key)
        first = self.rule.path(path, written)
        self.add(first, mode)
        if first is not None and first.kind != "outside":
            return
        for origin in canonical(path):   # what the objects really are: a way out, or a forbidden one
            found = self.rule.path(origin, written=False)
            if found is not None and (first is None or found.kind != "outside"):
                self.add(found, mode)

    # --- to be given by a reader of source or of live objects --------------------------------

    def global_paths(self, name: str, node: ast.AST) -> frozenset[str]:
        raise NotImplementedError

    def reach_global(self, name: str, node: ast.AST, mode: str) -> None:
        raise NotImplementedError

    def is_global(self, owner: _Scope | None) -> bool:
        return owner is None or owner.kind == "module"

    # --- the walk --------------------------------------------------------------------------

    def scan(self, node: ast.AST, mode: str) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if (id(n), FULL) in self._done or (id(n), mode) in self._done:
                continue
            self._done.add((id(n), mode))
            if isinstance(n, ast.Name):
                self.name(n, mode)
            elif isinstance(n, ast.Attribute):
                self.attribute(n, mode)
            elif isinstance(n, ast.Call):
                self.call(n, mode)
            elif isinstance(n, (ast.Constant, ast.JoinedStr, ast.BinOp)) and mode == FULL:
                text = literal_string(n)
                if text is not None:
                    self.add(self.rule.string(text), mode)
            elif isinstance(n, (ast.Import, ast.ImportFrom)) and mode == FULL:
                self.imports(n, mode)   # (top-level imports are judged where the names are used)
            reads = getattr(n, "_reads", None)
            if reads is not None:
                stack.append(reads)
            stack.extend(_children(n, mode))

    def imports(self, node: ast.Import | ast.ImportFrom, mode: str) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                self.check_path(a.name, mode)
            return
        module = "." * (node.level or 0) + (node.module or "")
        for a in node.names:
            if a.name == "*":
                self.check_path(module, mode)
            else:
                self.check_path(f"{module}.{a.name}" if not module.endswith(".") else module + a.name, mode)

    def name(self, node: ast.Name, mode: str) -> None:
        name = node.id
        scope = self.index.scope_of.get(id(node))
        if _is_dunder(name) and name not in _SAFE_DUNDER_NAMES \
                and not (isinstance(node.ctx, ast.Store) and scope is not None and scope.kind == "class"):
            self.add(Finding("dynamic", f"{DYNAMIC} ({name})"), mode)   # (a class may set __hash__, __slots__...)
            return
        if not isinstance(node.ctx, ast.Load):
            return
        owner = _owner(scope, name)
        if not self.is_global(owner):
            self.reach_bindings(owner, name, mode)
        else:
            self.reach_global(name, node, mode)

    def builtin(self, name: str, node: ast.AST | None, mode: str) -> None:
        if name in _BY_NAME and node is not None and id(node) in self.index.literal_calls:
            return
        if name in _BY_NAME:
            self.add(Finding("dynamic", f"{DYNAMIC} ({name} with a name that is not a literal string)"), mode)
        elif name in DYNAMIC_BUILTINS:
            self.add(Finding("dynamic", f"{DYNAMIC} ({name})"), mode)

    def attribute_name(self, attr: str, mode: str) -> None:
        finding = self.rule.attribute(attr)
        if finding is not None and (mode == FULL or finding.kind == "dynamic"):
            self.add(finding, mode)
        for value in self.index.patches.get(attr, ()):
            if value is not None:
                self.scan(value, mode)

    def attribute(self, node: ast.Attribute, mode: str) -> None:
        self.attribute_name(node.attr, mode)
        for path in self.paths_of(node):
            self.check_path(path, mode)

    def call(self, node: ast.Call, mode: str) -> None:
        func = node.func
        if isinstance(func, ast.Name) and id(func) in self.index.literal_calls:
            attr = literal_string(node.args[1])
            self.attribute_name(attr, mode)
            if func.id == "getattr":
                for path in self.paths_of(node):
                    self.check_path(path, mode)

    def reach_bindings(self, scope: _Scope, name: str, mode: str) -> None:
        key = (id(scope), name, mode)
        if key in self._reached or (id(scope), name, FULL) in self._reached:
            return
        self._reached.add(key)
        for b in scope.bindings.get(name, ()):
            if b.kind == "import":
                self.check_path(b.path, mode)
            elif b.given:
                continue
            elif b.node is not None:
                self.scan(b.node, mode)

    # --- which modules an expression may be -------------------------------------------------

    def binding_paths(self, b: _Binding) -> frozenset[str]:
        if b.kind == "import":
            return frozenset({b.path})
        if b.kind == "value" and b.node is not None:
            return self.paths_of(b.node)
        return frozenset()

    def paths_of(self, node: ast.AST) -> frozenset[str]:
        """The dotted paths of modules (and their members) that ``node`` may evaluate to, as far as
        names and attributes can tell (a call's result is not known)."""
        key = id(node)
        if key in self._paths:
            return self._paths[key]
        self._paths[key] = frozenset()   # a cycle (x = x.a) ends here
        found: set[str] = set()
        if isinstance(node, ast.Name):
            owner = _owner(self.index.scope_of.get(id(node)), node.id)
            if self.is_global(owner):
                found |= self.global_paths(node.id, node)
            else:
                for b in owner.bindings.get(node.id, ()):
                    found |= self.binding_paths(b)
        elif isinstance(node, ast.Attribute):
            found |= {f"{p}.{node.attr}" for p in self.paths_of(node.value)}
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "getattr" and id(func) in self.index.literal_calls:
                attr = literal_string(node.args[1])
                found |= {f"{p}.{attr}" for p in self.paths_of(node.args[0])}
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for elt in node.elts:
                found |= self.paths_of(elt)
        elif isinstance(node, ast.Dict):
            for v in node.values:
                found |= self.paths_of(v)
        elif isinstance(node, (ast.Starred, ast.NamedExpr, ast.Subscript)):
            found |= self.paths_of(node.value)
        elif isinstance(node, ast.IfExp):
            found |= self.paths_of(node.body) | self.paths_of(node.orelse)
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                found |= self.paths_of(v)
        result = frozenset(sorted(found)[:_MAX_PATHS])
        self._paths[key] = result
        return result


class _NotebookReader(_Reader):
    """Reads answer cells (and the set-up cells they run after) without running anything."""

    def __init__(self, rule: Rule, answers: Sequence[ast.Module], setup: Sequence[ast.Module]) -> None:
        super().__init__(rule)
        self.module = _Scope("module")
        for tree in setup:
            _Builder(self.index, self.module, given=True).build(tree)
        for tree in answers:
            _Builder(self.index, self.module, given=False).build(tree)
        self.answers = list(answers)

    def global_paths(self, name: str, node: ast.AST) -> frozenset[str]:
        found: set[str] = set()
        for b in self.module.bindings.get(name, ()):
            found |= self.binding_paths(b)
        if name not in self.module.names:
            found |= {f"{m}.{name}" for m, _ in self.module.stars}
        return frozenset(found)

    def reach_global(self, name: str, node: ast.AST | None, mode: str) -> None:
        if name in self.module.names:
            self.reach_bindings(self.module, name, mode)
        elif hasattr(builtins, name):
            self.builtin(name, node, mode)
        elif self.module.stars:
            for m, _ in self.module.stars:
                self.check_path(f"{m}.{name}", mode)
        elif mode == FULL:
            self.add(Finding("undefined", f"the name {name!r}, which no cell of the notebook defines"), mode)

    def read(self, name: str) -> list[str]:
        # imports of a forbidden module anywhere in the answers, used or not
        for tree in self.answers:
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    paths = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                    for p in paths:
                        m = _under(p, self.rule.forbidden)
                        if m:
                            self.add(Finding("forbidden", m), FULL)
        # the answer, and all it reaches
        if not any(not b.given for b in self.module.bindings.get(name, ())):
            self.add(Finding("undefined", f"the name {name!r}, which no answer cell defines"), FULL)
        self.reach_bindings(self.module, name, FULL)
        # top-level code of every answer cell: dynamic code there could rebind anything
        for tree in self.answers:
            for stmt in tree.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and not stmt.decorator_list:
                    args = stmt.args
                    parts = [*args.defaults, *(d for d in args.kw_defaults if d is not None),
                             *(a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                                      args.vararg, args.kwarg] if a is not None and a.annotation),
                             *([stmt.returns] if stmt.returns else [])]
                    for part in parts:
                        self.scan(part, TOP)
                else:
                    self.scan(stmt, TOP)
        return self.sorted_findings()


def notebook_uses(answers: Sequence[ast.Module], name: str, *, allowed: Sequence[str] = DEFAULT_ALLOWED,
                  forbidden: Sequence[str] = (), setup: Sequence[ast.Module] = ()) -> list[str]:
    """What the function ``name`` of a notebook uses outside its task's allow-list (see the module
    docstring), read from the parsed answer cells ``answers`` and set-up cells ``setup``; one text
    per finding, [] when the answer keeps to the rule."""
    rule = Rule(allowed, forbidden)
    try:
        return _NotebookReader(rule, answers, setup).read(name)
    except RecursionError:
        return [TOO_DEEP]


# --------------------------------------------------------------------------------------------
# A function in this process
# --------------------------------------------------------------------------------------------


@dataclass
class _Env:
    closure: dict
    globals: dict
    builtins: dict

    def lookup(self, name: str) -> tuple[str, Any]:
        """("closure"|"global"|"builtin"|"missing", the object)."""
        if name in self.closure:
            return "closure", self.closure[name]
        if name in self.globals:
            return "global", self.globals[name]
        if name in self.builtins:
            return "builtin", self.builtins[name]
        return "missing", None


def _env(f: types.FunctionType) -> _Env:
    code = f.__code__
    closure = {}
    for var, cell in zip(code.co_freevars, f.__closure__ or ()):
        try:
            closure[var] = cell.cell_contents
        except ValueError:   # an empty cell
            pass
    globs = f.__globals__
    b = globs.get("__builtins__", builtins)
    return _Env(closure, globs, b if isinstance(b, dict) else vars(b))


def _function_ast(f: types.FunctionType) -> ast.AST | None:
    """The def (or lambda) of ``f`` in its source, when Python can find the source and it matches
    the function's code (its name and parameters); else None."""
    try:
        lines, _ = inspect.getsourcelines(f)
    except (OSError, TypeError, IndexError):
        return None
    try:
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    code = f.__code__
    params = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount
                                   + bool(code.co_flags & inspect.CO_VARARGS)
                                   + bool(code.co_flags & inspect.CO_VARKEYWORDS)])
    found = []
    for node in ast.walk(tree):
        if code.co_name == "<lambda>" and isinstance(node, ast.Lambda) \
                or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == code.co_name:
            a = node.args
            names = [x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
            names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
            if sorted(names) == sorted(params):
                found.append(node)
    if len(found) != 1:
        return None
    return tree, found[0]


_LOADS = frozenset({"LOAD_FAST", "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME", "LOAD_CONST", "LOAD_CLOSURE",
                    "LOAD_CLASSDEREF", "LOAD_FAST_CHECK"})
_ATTRS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_SKIP = frozenset({"CACHE", "PRECALL", "EXTENDED_ARG", "NOP", "PUSH_NULL", "RESUME", "KW_NAMES"})


def _literal_by_name_call(instrs: list, k: int) -> tuple[str, Any, list[str]] | None:
    """For ``instrs[k]`` loading getattr/setattr/delattr: the literal name it is called with
    (``getattr(x.y, "name")``), the instruction that loads the object's root (``x``) and the
    attributes after it (``["y"]``); None when the name is computed or the call is not plain."""
    j, n = k + 1, len(instrs)
    while j < n and instrs[j].opname in _SKIP:
        j += 1
    if j >= n or instrs[j].opname not in _LOADS:
        return None
    root, attrs = instrs[j], []
    j += 1
    while j < n and (instrs[j].opname in _ATTRS or instrs[j].opname in _SKIP):
        if instrs[j].opname in _ATTRS:
            attrs.append(instrs[j].argval)
        j += 1
    if j >= n or instrs[j].opname != "LOAD_CONST" or not isinstance(instrs[j].argval, str):
        return None
    literal = instrs[j].argval
    j += 1
    if j < n and instrs[j].opname in _LOADS:   # getattr's default, setattr's value
        j += 1
    while j < n and instrs[j].opname in ("CACHE", "EXTENDED_ARG", "PRECALL"):
        j += 1
    return (literal, root, attrs) if j < n and instrs[j].opname in ("CALL", "CALL_FUNCTION") else None


class _LiveReader(_Reader):
    """Reads a function in this process: its source (byte code when none) and what its names are
    bound to now."""

    def __init__(self, rule: Rule, home: str | None) -> None:
        super().__init__(rule)
        self.home = home
        self.envs: dict[int, _Env] = {}
        self._seen: set[int] = set()
        self._keep: list = []

    def env_of(self, node: ast.AST) -> _Env | None:
        scope = self.index.scope_of.get(id(node))
        return None if scope is None else self.envs.get(id(scope.root()))

    def global_paths(self, name: str, node: ast.AST) -> frozenset[str]:
        env = self.env_of(node)
        if env is None:
            return frozenset()
        where, obj = env.lookup(name)
        if where != "builtin" and isinstance(obj, types.ModuleType) and isinstance(obj.__name__, str):
            return frozenset({obj.__name__})
        return frozenset()

    def reach_global(self, name: str, node: ast.AST | None, mode: str) -> None:
        env = self.env_of(node) if node is not None else None
        if env is None:
            return
        where, obj = env.lookup(name)
        if where == "builtin":
            self.builtin(name, node, mode)
        elif where == "missing":
            self.add(Finding("undefined", f"the name {name!r}, which is not defined"), mode)
        else:
            self.reach_object(obj, name)

    # --- objects ---------------------------------------------------------------------------

    def reach_object(self, obj: Any, name: str = "", depth: int = 0) -> None:
        if id(obj) in self._seen or depth > 8:
            return
        self._seen.add(id(obj))
        self._keep.append(obj)
        if isinstance(obj, types.ModuleType):
            self.check_path(obj.__name__, FULL)
        elif isinstance(obj, types.FunctionType):
            if obj.__module__ == self.home:
                self.visit_function(obj)
            else:
                self.check_origin(obj)
        elif isinstance(obj, type):
            if obj.__module__ == self.home:
                for base in obj.__bases__:
                    if base is not object:
                        self.reach_object(base, depth=depth + 1)
                for value in list(vars(obj).values()):
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    if isinstance(value, property):
                        for part in (value.fget, value.fset, value.fdel):
                            if part is not None:
                                self.reach_object(part, depth=depth + 1)
                    elif isinstance(value, (types.FunctionType, type)):
                        self.reach_object(value, depth=depth + 1)
            else:
                self.check_origin(obj)
        elif isinstance(obj, types.MethodType):
            self.reach_object(obj.__func__, depth=depth + 1)
            self.reach_object(obj.__self__, depth=depth + 1)
        elif isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            owner = getattr(obj, "__self__", None)
            if owner is builtins or getattr(obj, "__module__", None) == "builtins":
                if obj.__name__ in DYNAMIC_BUILTINS:
                    self.add(Finding("dynamic", f"{DYNAMIC} ({obj.__name__})"), FULL)
            else:
                self.check_origin(obj)
        elif isinstance(obj, (tuple, list, set, frozenset)):
            for item in list(obj)[:_MAX_ITEMS]:
                self.reach_object(item, depth=depth + 1)
        elif isinstance(obj, dict):
            for item in list(obj.values())[:_MAX_ITEMS]:
                self.reach_object(item, depth=depth + 1)
        elif type(obj).__module__ == self.home:
            self.reach_object(type(obj), depth=depth + 1)
        else:
            self.check_origin(obj)

    def check_origin(self, obj: Any) -> None:
        origin = _object_origin(obj)
        if origin is not None:
            self.check_path(origin, FULL, written=False)

    def visit_function(self, f: types.FunctionType) -> None:
        env = _env(f)
        for value in [*(f.__defaults__ or ()), *(f.__kwdefaults__ or {}).values()]:
            self.reach_object(value)
        found = _function_ast(f)
        if found is not None:
            tree, node = found
            module = _Scope("module")
            _Builder(self.index, module, given=False).build(tree)
            module.names.clear()   # the snippet's own top level is the function's globals, read live
            module.bindings.clear()
            self.envs[id(module)] = env
            self.scan(node, FULL)
        else:
            self.scan_code(f.__code__, env)

    def scan_code(self, code: types.CodeType, env: _Env, nested: bool = False) -> None:
        """The byte-code reading of a function without source: the global and free names it loads
        (with the attribute chains after them), its attributes, imports and strings."""
        instrs = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
        chain_root: Any = _MISSING
        chain: list[str] = []

        def flush() -> None:
            nonlocal chain_root, chain
            if isinstance(chain_root, types.ModuleType) and chain:
                self.check_path(".".join([chain_root.__name__, *chain]), FULL)
            chain_root, chain = _MISSING, []

        last_import = None
        for k, ins in enumerate(instrs):
            op = ins.opname
            if op in _SKIP:
                continue
            if op in ("LOAD_GLOBAL", "LOAD_NAME") or (op in ("LOAD_DEREF", "LOAD_CLASSDEREF")
                                                       and ins.argval in env.closure and not nested):
                flush()
                name = ins.argval
                if _is_dunder(name) and name not in _SAFE_DUNDER_NAMES:
                    self.add(Finding("dynamic", f"{DYNAMIC} ({name})"), FULL)
                    continue
                where, obj = env.lookup(name)
                if where == "builtin":
                    if name in _BY_NAME:
                        call = _literal_by_name_call(instrs, k)
                        if call is None:
                            self.builtin(name, None, FULL)
                        else:
                            literal, root, attrs = call
                            self.attribute_name(literal, FULL)
                            if root.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF"):
                                kind, base = env.lookup(root.argval)
                                if kind != "builtin" and isinstance(base, types.ModuleType):
                                    self.check_path(".".join([base.__name__, *attrs, literal]), FULL)
                    else:
                        self.builtin(name, None, FULL)
                elif where == "missing":
                    if op != "LOAD_DEREF":
                        self.add(Finding("undefined", f"the name {name!r}, which is not defined"), FULL)
                else:
                    self.reach_object(obj, name)
                    chain_root = obj
                continue
            if op in _ATTRS or op in ("STORE_ATTR", "DELETE_ATTR", "LOAD_SUPER_ATTR"):
                attr = ins.argval
                self.attribute_name(attr, FULL)
                if op in _ATTRS and chain_root is not _MISSING:
                    chain.append(attr)
                    continue
                flush()
                continue
            flush()
            if op == "IMPORT_NAME":
                last_import = ins.argval
                self.check_path(last_import, FULL)
            elif op == "IMPORT_FROM" and last_import:
                self.check_path(f"{last_import}.{ins.argval}", FULL)
            elif op == "LOAD_CONST":
                if isinstance(ins.argval, str):
                    self.add(self.rule.string(ins.argval), FULL)
                elif isinstance(ins.argval, types.CodeType):
                    self.scan_code(ins.argval, env, nested=True)
        flush()


def live_uses(fn: Any, *, allowed: Sequence[str] = DEFAULT_ALLOWED, forbidden: Sequence[str] = ()) -> list[str]:
    """What the function ``fn`` (in this process) uses outside its task's allow-list (see the module
    docstring), reading its source or byte code and the objects its names are bound to now; one
    text per finding, [] when it keeps to the rule. Functions of ``fn``'s own module (the notebook)
    that it reaches are read the same way."""
    # the notebook: the module of the function (``__main__`` in a kernel); for another callable
    # (an instance of a notebook class, functools.partial...) the kernel's ``__main__``
    rule = Rule(allowed, forbidden)
    home = fn.__module__ if isinstance(fn, types.FunctionType) else "__main__"
    if not isinstance(home, str) or _under(home, (*_PROJECT, *rule.allowed, *rule.forbidden)):
        home = None   # a library's own function handed in as the answer: judged by where it comes from
    reader = _LiveReader(rule, home=home)
    try:
        reader.reach_object(fn)
    except RecursionError:
        return [TOO_DEEP]
    return reader.sorted_findings()
