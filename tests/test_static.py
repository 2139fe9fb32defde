"""Tests of autograder.static: forbidden module uses in answer cells, and AST similarity.

Each answer below is a small notebook's answer cells, written by hand; what it should be charged
with follows from reading it (which module does the graded function reach, and how).
"""

from __future__ import annotations

import textwrap

import pytest

from autograder.static import forbidden_uses, normalise, parse, similarity

MODULES = ("dgm.divergences", "torch.distributions")
DYNAMIC = "dynamic"


def cells(*sources: str) -> list[str]:
    return [textwrap.dedent(s) for s in sources]


def uses(*sources: str, name: str = "kl", modules=MODULES) -> list[str]:
    return forbidden_uses(cells(*sources), name, modules)


# --------------------------------------------------------------------------------------------
# forbidden_uses: answers that reach a forbidden module
# --------------------------------------------------------------------------------------------

FORBIDDEN = {
    "from-import used in the function": (["""
        from dgm.divergences import gaussian_kl

        def kl(mq, lq, mp, lp):
            return gaussian_kl(mq, lq, mp, lp)
        """], "dgm.divergences"),
    "import ... as alias": (["""
        import dgm.divergences as dv

        def kl(mq, lq, mp, lp):
            return dv.gaussian_kl(mq, lq, mp, lp)
        """], "dgm.divergences"),
    "from package import module": (["""
        from dgm import divergences

        def kl(mq, lq, mp, lp):
            return divergences.gaussian_kl(mq, lq, mp, lp)
        """], "dgm.divergences"),
    "import torch.distributions as D": (["""
        import torch
        import torch.distributions as D

        def kl(mq, lq, mp, lp):
            q = D.Normal(mq, torch.exp(0.5 * lq))
            p = D.Normal(mp, torch.exp(0.5 * lp))
            return D.kl_divergence(q, p)
        """], "torch.distributions"),
    "torch.distributions by its full name": (["""
        import torch

        def kl(mq, lq, mp, lp):
            return torch.distributions.Normal(mq, torch.exp(0.5 * lq)).entropy()
        """], "torch.distributions"),
    "torch imported under another name": (["""
        import torch as T

        def kl(mq, lq, mp, lp):
            return T.distributions.Normal(mq, 1.0).entropy()
        """], "torch.distributions"),
    "from torch.distributions import a class": (["""
        from torch.distributions import Normal as N

        def kl(mq, lq, mp, lp):
            return N(mq, 1.0).entropy()
        """], "torch.distributions"),
    "import inside the function": (["""
        def kl(mq, lq, mp, lp):
            from dgm.divergences import gaussian_kl as g
            return g(mq, lq, mp, lp)
        """], "dgm.divergences"),
    "helper in another cell": (["""
        import torch

        def kl(mq, lq, mp, lp):
            return _entropy(mq, lq) - _cross(mq, lq, mp, lp)
        """, """
        def _entropy(m, lv):
            return torch.distributions.Normal(m, torch.exp(0.5 * lv)).entropy()

        def _cross(mq, lq, mp, lp):
            return 0.5 * (lp + (torch.exp(lq) + (mq - mp) ** 2) / torch.exp(lp))
        """], "torch.distributions"),
    "helper of a helper": (["""
        import torch

        def kl(m, s):
            return outer(m, s)
        """, """
        def outer(m, s):
            return inner(m, s) * 2

        def inner(m, s):
            return torch.distributions.Normal(m, s).mean
        """], "torch.distributions"),
    "module-level alias of a function": (["""
        import dgm.divergences
        kl_ref = dgm.divergences.gaussian_kl
        """, """
        def kl(mq, lq, mp, lp):
            return kl_ref(mq, lq, mp, lp)
        """], "dgm.divergences"),
    "module-level alias chain": (["""
        import torch
        T = torch
        D = T.distributions
        def kl(m, s):
            return D.Normal(m, s).mean
        """], "torch.distributions"),
    "lambda bound to the graded name": (["""
        import dgm.divergences as dv
        kl = lambda mq, lq, mp, lp: dv.gaussian_kl(mq, lq, mp, lp)
        """], "dgm.divergences"),
    "default argument": (["""
        import dgm.divergences as dv

        def kl(mq, lq, mp, lp, f=dv.gaussian_kl):
            return f(mq, lq, mp, lp)
        """], "dgm.divergences"),
    "imported in a cell, never used": (["""
        import torch
        from torch.distributions import Normal
        """, """
        def kl(m, s):
            return torch.exp(m)
        """], "torch.distributions"),
}


@pytest.mark.parametrize("key", list(FORBIDDEN))
def test_forbidden_module_is_found(key):
    sources, module = FORBIDDEN[key]
    found = uses(*sources)
    assert module in found
    other = next(m for m in MODULES if m != module)
    assert other not in found


@pytest.mark.parametrize("code", [
    """
    def kl(a):
        return __import__("dgm.div" + "ergences").divergences.gaussian_kl(a)
    """,
    """
    import importlib

    def kl(a):
        return importlib.import_module("dgm." + "divergences").gaussian_kl(a)
    """,
    """
    from importlib import import_module

    def kl(a):
        return import_module("torch." + "distributions").Normal(a, 1.0).mean
    """,
    """
    def kl(a):
        exec("import dgm.div" + "ergences as dv")
        return a
    """,
    """
    def kl(a):
        return eval("a * 2")
    """,
    """
    def kl(a):
        return globals()["helper_" + "x"](a)
    """,
    """
    import sys

    def kl(a):
        return sys.modules["torch.distri" + "butions"].Normal(a, 1.0).mean
    """,
    """
    import builtins

    def kl(a):
        return builtins.__import__("os")
    """,
], ids=["__import__", "importlib.import_module", "from importlib import import_module", "exec", "eval", "globals",
        "sys.modules", "builtins.__import__"])
def test_dynamic_code_in_the_function_is_forbidden(code):
    found = uses(code)
    assert any(DYNAMIC in f for f in found), found


def test_dynamic_code_in_a_called_helper_is_forbidden():
    found = uses("""
        def kl(a):
            return helper(a)
        """, """
        def helper(a):
            return eval("a")
        """)
    assert any(DYNAMIC in f for f in found)


def test_the_module_name_as_a_string_is_reported():
    found = uses("""
        import sys

        def kl(a):
            name = "dgm.divergences"
            return a
        """)
    assert any("dgm.divergences" in f and "string" in f for f in found), found
    found = uses("""
        def kl(a):
            return {"torch.distributions.normal": a}
        """)
    assert any("torch.distributions" in f for f in found), found


CLEAN = {
    "torch and math": """
        import math
        import torch

        def kl(mq, lq, mp, lp):
            var_q, var_p = torch.exp(lq), torch.exp(lp)
            return 0.5 * (lp - lq + (var_q + (mq - mp) ** 2) / var_p - 1).sum(-1) + 0 * math.pi
        """,
    "torch.nn.functional": """
        import torch.nn.functional as F
        from torch.nn import functional

        def kl(a, b):
            return F.softplus(a) - functional.logsigmoid(b)
        """,
    "dgm.distributions is allowed": """
        import torch
        from dgm.distributions import gaussian_log_prob

        def kl(mq, lq, mp, lp, z):
            return (gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp)).mean(0)
        """,
    "dgm.distributions through the package": """
        import dgm
        import dgm.distributions

        def kl(m, lv, z):
            return dgm.distributions.gaussian_log_prob(z, m, lv)
        """,
    "a name that merely starts like the module": """
        import torch

        def kl(a):
            divergences = a * 2
            distributions = torch.ones(3)
            return divergences + distributions.sum()
        """,
    "a similar module name": """
        import dgm.divergences_helpers_not_real as h

        def kl(a):
            return h.f(a)
        """,
    "getattr with a computed name is not dynamic import": """
        import torch

        def kl(a, op="exp"):
            return getattr(torch, op)(a)
        """,
}


@pytest.mark.parametrize("key", list(CLEAN))
def test_clean_answers_are_not_charged(key):
    assert uses(CLEAN[key]) == []


def test_a_helper_that_is_never_called_does_not_count():
    assert uses("""
        import torch

        def kl(m, s):
            return torch.exp(m) * s

        def unused(m, s):
            return torch.distributions.Normal(m, s).mean
        """) == []
    # ... but calling it does
    assert "torch.distributions" in uses("""
        import torch

        def kl(m, s):
            return unused(m, s)

        def unused(m, s):
            return torch.distributions.Normal(m, s).mean
        """)


def test_other_functions_dynamic_code_does_not_count():
    assert uses("""
        import torch

        def kl(m):
            return torch.exp(m)

        def debug(m):
            return eval("m")
        """) == []


def test_only_the_given_modules_count():
    code = """
        import dgm.divergences as dv

        def kl(a):
            return dv.gaussian_kl(a)
        """
    assert uses(code, modules=("torch.distributions",)) == []
    assert uses(code, modules=("dgm.divergences",)) == ["dgm.divergences"]
    assert uses(code, modules=("dgm",)) == ["dgm"]


def test_a_missing_function_still_reports_imports():
    assert uses("import torch.distributions as D\n", name="kl") == ["torch.distributions"]
    assert uses("import torch\n", name="kl") == []


def test_sources_that_do_not_parse():
    assert parse("def kl(a:\n    return a\n") is None
    assert uses("def kl(a:\n    return a\n") == []
    assert uses("") == []
    # a broken cell does not hide what the other cells do
    found = uses("def broken(:\n", """
        from dgm.divergences import gaussian_kl

        def kl(a):
            return gaussian_kl(a)
        """)
    assert found == ["dgm.divergences"]


def test_ipython_magics_and_shell_lines_are_ignored():
    clean = """
        %matplotlib inline
        !ls -la
        import torch
        %timeit torch.ones(3)

        def kl(a):
            return torch.exp(a)
        """
    assert parse(textwrap.dedent(clean)) is not None
    assert uses(clean) == []
    charged = """
        %load_ext autoreload
        !pip list
        import torch.distributions as D

        def kl(a):
            return D.Normal(a, 1.0).mean
        """
    assert uses(charged) == ["torch.distributions"]


# --------------------------------------------------------------------------------------------
# forbidden_uses: ways around it that it misses (bugs, documented)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binding", [
    "import importlib\nD = importlib.import_module('torch.distributions')\n",
    "import sys, torch\nD = sys.modules['torch.distributions']\n",
    "D = __import__('torch.distributions', fromlist=['Normal'])\n",
], ids=["importlib", "sys.modules", "__import__"])
def test_module_level_dynamic_alias_is_charged(binding):
    found = uses(binding, """
        def kl(m, s):
            return D.Normal(m, s).mean
        """)
    assert found != []


def test_getattr_with_the_submodule_name_is_charged():
    found = uses("""
        import torch

        def kl(m, s):
            return getattr(torch, "distributions").Normal(m, s).mean
        """)
    assert found != []


def test_an_import_inside_a_line_magic_is_charged():
    found = uses("""
        %time import torch.distributions as D

        def kl(m, s):
            return D.Normal(m, s).mean
        """)
    assert found != []


# --------------------------------------------------------------------------------------------
# normalise / similarity
# --------------------------------------------------------------------------------------------

ORIGINAL = """
import torch

def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    var_ratio = torch.exp(logvar_q - logvar_p)
    diff = (mu_q - mu_p) ** 2
    return 0.5 * (var_ratio + diff / torch.exp(logvar_p) - 1 - (logvar_q - logvar_p)).sum(-1)
"""

DISGUISED = '''
"""My own KL."""
import torch


def my_kl(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians -- written from scratch, honest."""
    # the ratio of the variances

    r: torch.Tensor = torch.exp(b - d)   # var_q / var_p
    sq = (a - c) ** 2


    return 0.5 * (r + sq / torch.exp(d) - 1 - (b - d)).sum(-1)  # done
'''

MONTE_CARLO = """
import torch

def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p, n=10_000):
    eps = torch.randn(n, *mu_q.shape)
    z = mu_q + torch.exp(0.5 * logvar_q) * eps
    log_q = -0.5 * (logvar_q + (z - mu_q) ** 2 / torch.exp(logvar_q))
    log_p = -0.5 * (logvar_p + (z - mu_p) ** 2 / torch.exp(logvar_p))
    return (log_q - log_p).mean(0).sum(-1)
"""

LOOPS = """
import math

def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    total = 0.0
    for i in range(len(mu_q)):
        total += math.log(math.exp(logvar_p[i]) / math.exp(logvar_q[i])) / 2
        total += (math.exp(logvar_q[i]) + (mu_q[i] - mu_p[i]) ** 2) / (2 * math.exp(logvar_p[i]))
    return total - len(mu_q) / 2
"""


def test_renaming_comments_docstrings_annotations_and_blank_lines_do_not_matter():
    a, b = normalise(ORIGINAL), normalise(DISGUISED)
    assert a and a == b
    assert similarity(a, b) == 1.0


def test_normalised_text_drops_what_it_promises_to():
    text = normalise(DISGUISED)
    for gone in ("My own KL", "honest", "#", "var_q", "Tensor", "->", "my_kl", "\n\n\n"):
        assert gone not in text, gone
    # literals and attribute names (the API used) are kept
    for kept in ("0.5", "exp", "sum", "-1", "** 2"):
        assert kept in text, kept


def test_renaming_is_by_first_appearance_not_by_name():
    # the same names used in a different order give a different structure
    a = normalise("def f(x, y):\n    return x - y\n")
    b = normalise("def f(x, y):\n    return y - x\n")
    assert a != b and similarity(a, b) < 1.0
    # different names used in the same order give the same text
    assert normalise("def g(p, q):\n    return p - q\n") == a


def test_a_changed_literal_is_a_change():
    a = normalise(ORIGINAL)
    b = normalise(ORIGINAL.replace("0.5 *", "0.25 *"))
    assert 0.9 < similarity(a, b) < 1.0


@pytest.mark.parametrize("other", [MONTE_CARLO, LOOPS], ids=["monte carlo", "python loops"])
def test_a_different_algorithm_is_not_similar(other):
    score = similarity(normalise(ORIGINAL), normalise(other))
    assert score < 0.9
    assert similarity(normalise(other), normalise(ORIGINAL)) < 0.9


def test_similarity_is_a_ratio_in_the_unit_interval():
    texts = [normalise(t) for t in (ORIGINAL, DISGUISED, MONTE_CARLO, LOOPS)]
    for a in texts:
        assert similarity(a, a) == 1.0
        for b in texts:
            assert 0.0 <= similarity(a, b) <= 1.0


def test_unparsable_source():
    assert normalise("def f(:\n    pass\n") == ""
    assert normalise("x = (1,\n") == ""
    assert similarity(normalise("def f(:"), normalise(ORIGINAL)) == 0.0
    assert similarity(normalise(ORIGINAL), "") == 0.0
    assert similarity("", "") == 0.0


def test_magics_do_not_change_the_normalised_text():
    assert normalise("%matplotlib inline\n!ls\n" + ORIGINAL) == normalise(ORIGINAL)


def test_annotation_only_statements_are_dropped():
    assert normalise("def f(x):\n    y: int\n    return x\n") == normalise("def f(x):\n    return x\n")
    assert normalise("x: float = 1.0\n") == normalise("x = 1.0\n")


@pytest.mark.parametrize("a, b", [
    pytest.param("import torch as t\ndef f(x):\n    return t.exp(x)\n",
                 "import torch as T\ndef f(x):\n    return T.exp(x)\n", id="import alias (alias.asname)"),
    pytest.param("from torch.nn import functional as F\ndef f(x):\n    return F.relu(x)\n",
                 "from torch.nn import functional as G\ndef f(x):\n    return G.relu(x)\n", id="from-import alias"),
    pytest.param("class A:\n    def f(self, x):\n        return x\n",
                 "class B:\n    def f(self, x):\n        return x\n", id="class name (ClassDef.name)"),
    pytest.param('class A:\n    """Mine."""\n    def f(self, x):\n        return x\n',
                 "class A:\n    def f(self, x):\n        return x\n", id="class docstring"),
    pytest.param("def f(x):\n    try:\n        return g(x)\n    except ValueError as e:\n        raise RuntimeError(e)\n",
                 "def f(x):\n    try:\n        return g(x)\n    except ValueError as err:\n        raise RuntimeError(err)\n",
                 id="except ... as name (ExceptHandler.name)"),
    pytest.param("n = 0\ndef f():\n    global n\n    n += 1\n", "k = 0\ndef f():\n    global k\n    k += 1\n",
                 id="global declaration (Global.names)"),
])
def test_renaming_any_identifier_does_not_matter(a, b):
    assert similarity(normalise(a), normalise(b)) == 1.0


# --------------------------------------------------------------------------------------------
# ways around the check found by a review (each scored full marks before the fix)
# --------------------------------------------------------------------------------------------

REVIEW_BYPASSES = {
    "a function built by a factory": ("""
        import torch

        def _make():
            D = torch.distributions
            def f(m, s):
                return D.Normal(m, s).mean
            return f

        kl = _make()
        """, "torch.distributions"),
    "the module reached through __dict__": ("""
        import torch

        def kl(m, s):
            D = torch.__dict__["distributions"]
            return D.Normal(m, s).mean
        """, DYNAMIC),
    "an import run as a string by the shell": ("""
        get_ipython().run_cell("import torch.distributions as _TD")

        def kl(m, s):
            return _TD.Normal(m, s).mean
        """, DYNAMIC),
}


@pytest.mark.parametrize("key", list(REVIEW_BYPASSES))
def test_review_bypasses_are_charged(key):
    source, expected = REVIEW_BYPASSES[key]
    assert any(expected in found for found in uses(source))


def test_module_methods_of_a_network_are_not_dynamic_code():
    assert uses("""
        import torch

        def kl(critic, x):
            return sum(p.sum() for m in critic.modules() for p in m.parameters()) * x
        """) == []
