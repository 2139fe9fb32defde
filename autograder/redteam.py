"""Hostile and awkward submissions of ``01-elbo``: the grader's red-team suite.

Every :class:`Attack` builds one submission file (:attr:`Attack.build`) aimed at one task
(:attr:`Attack.target`) and says what grading must make of it (:attr:`Attack.expect`):

* ``"zero"`` — the attack must score nothing on its target. Where the attack tries to cheat, the
  answer it hands in is *wrong* (or correct only behind a forbidden shortcut), so that it would
  score only if the trick worked; where it tries to break the grader (a fork bomb, a 10 GB
  allocation, a crash), the hostile code comes first and a correct answer after it, so that the
  answer counts only if the hostile code returned — which the sandbox must not let it do.
* ``"full"`` — a benign but awkward submission (a duplicated cell, noisy output, re-ordered or
  mislabelled cells, writes that fail) that must keep full marks on its target.
* ``"not full"`` — a cheat whose answer is right where the visible suite looks (the values) and
  wrong only where the hidden one does (the gradients): it keeps the visible suite's points and must
  lose the hidden suite's, so less than full marks on its target.

:attr:`Attack.statuses` lists the statuses the submission may end with (a fork bomb must end as a
``timeout``, a truncated file as ``invalid``...). No status may depend on how loaded the grading
machine is: an attack that does heavy work (a flood, a big reply, a walk of the file system, a
memory hog) may also end as ``timeout`` where a slower machine lets a cell or check outrun its
limit, and as ``crashed`` where a cap may kill it first. Such an attack is always a ``"zero"``
one, so what the suite holds it to is its score on its target, not how it was stopped.

Every submission is the release notebook filled with the solution's answers
(:func:`autograder.samples.filled_release`), with one answer cell replaced or the notebook's
structure edited, so the suite stays in step with ``solutions/``. :func:`write_suite` writes the
suite, plus the full solution as the student :data:`CONTROL`, into a folder to grade.

Some attacks try to leave a trace on the grading machine; the names they use are here so a test
can check that none of them exists afterwards: :data:`ESCAPE_FILE` (written into every folder an
attack can name), :data:`SCORE_FILES` (forged score files), :data:`PICKLE_MARKERS` (created by
whoever unpickles the payloads), and :func:`escape_folders` (the host folders to look in).

The attacks avoid spelling out the markers of nbgrader's hidden tests in their own source, so
that a test can look for those markers in the reports: whatever it finds there has leaked.
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.course import REPO_ROOT
from autograder.samples import filled_release, solution_answers

ASSIGNMENT = "01-elbo"
#: The student who hands in the full solution, graded beside the attacks.
CONTROL = "control"
#: Statuses an attack may end with unless it says otherwise.
GRADED = ("graded",)
#: ... and those of a "zero" attack doing heavy work, which a loaded machine may let outrun a limit.
GRADED_OR_TIMEOUT = ("graded", "timeout")

#: Written by the attacks into every folder they can name outside their scratch folder.
ESCAPE_FILE = "dgm-redteam-escape.txt"
#: Forged score files (for the attacker, and for the control student) written wherever possible.
SCORE_FILES = ("dgm-redteam-score-self.json", f"dgm-redteam-score-{CONTROL}.json")
#: Files created on whatever machine unpickles the payloads: the grader must never do so.
PICKLE_MARKERS = {"return": "/tmp/dgm-redteam-unpickled-return", "metadata": "/tmp/dgm-redteam-unpickled-metadata"}
#: Text that replaces a forged results file's content: it must never reach the reports.
FORGED_MARK = "REDTEAM-FORGED-SCORE"


@dataclass(frozen=True)
class Attack:
    """One hostile or awkward submission of :data:`ASSIGNMENT`."""

    name: str                                  # the student id it is graded under
    target: str                                # the task it aims at
    description: str                           # what it tries, and why the grader must hold
    build: Callable[[Path], bytes] = field(repr=False)   # root -> the submission file's bytes
    expect: str = "zero"                       # "zero", "full" or "not full" on ``target``
    statuses: tuple[str, ...] = GRADED         # statuses it may end with
    threat: str = ""                           # the class of attack (:data:`THREATS`), set by its section

    def __post_init__(self) -> None:
        if self.expect not in ("zero", "full", "not full"):
            raise ValueError(f"{self.name}: expect must be 'zero', 'full' or 'not full', not {self.expect!r}")


# --------------------------------------------------------------------------------------------
# Building blocks: the solution-filled release, wrong answers, notebook bytes
# --------------------------------------------------------------------------------------------


def solution_notebook(root: Path = REPO_ROOT) -> nbformat.NotebookNode:
    """The release notebook with every answer cell filled from the solution."""
    return filled_release(solution_answers(root, ASSIGNMENT), root, ASSIGNMENT)


def notebook_bytes(nb: nbformat.NotebookNode) -> bytes:
    """A notebook as the bytes of an ``.ipynb`` file."""
    return (nbformat.writes(nb) + "\n").encode("utf-8")


def with_answers(root: Path, replacements: dict[str, str]) -> nbformat.NotebookNode:
    """The solution-filled release with the answer cells in ``replacements`` given new sources."""
    answers = solution_answers(root, ASSIGNMENT)
    answers.update(replacements)
    return filled_release(answers, root, ASSIGNMENT)


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    """The nbgrader grade id of a cell, or None."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def cell_index(nb: nbformat.NotebookNode, gid: str) -> int:
    """The position of the cell whose grade id is ``gid``; KeyError when there is none."""
    for i, cell in enumerate(nb.cells):
        if grade_id(cell) == gid:
            return i
    raise KeyError(f"no cell {gid!r} in the notebook")


def replacing(gid: str, source: str) -> Callable[[Path], bytes]:
    """A builder: the solution-filled release whose answer cell ``gid`` holds ``source``."""
    def build(root: Path) -> bytes:
        return notebook_bytes(with_answers(root, {gid: textwrap.dedent(source).strip("\n")}))
    return build


def prefixing(gid: str, hostile: str) -> Callable[[Path], bytes]:
    """A builder: the solution's answer cell ``gid`` with ``hostile`` code run before it."""
    def build(root: Path) -> bytes:
        correct = solution_answers(root, ASSIGNMENT)[gid]
        source = textwrap.dedent(hostile).strip("\n") + "\n\n" + correct
        return notebook_bytes(with_answers(root, {gid: source}))
    return build


def _wrong(source: str) -> str:
    return textwrap.dedent(source).strip("\n")


#: Wrong answers: each would pass only if the attack around it fooled the checks.
WRONG_KL = _wrong('''
    def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
        """Wrong on purpose: the factor 1/2 is missing."""
        log_ratio = logvar_q - logvar_p
        mahalanobis = (mean_q - mean_p) ** 2 * torch.exp(-logvar_p)
        return (torch.exp(log_ratio) + mahalanobis - 1.0 - log_ratio).sum(-1)
''')
WRONG_MC = _wrong('''
    def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
        """Wrong on purpose: the standard error is not divided by sqrt(S)."""
        shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape)
        eps = torch.randn((num_samples, *shape), generator=generator, dtype=mean_q.dtype, device=mean_q.device)
        z = mean_q + torch.exp(0.5 * logvar_q) * eps
        log_ratio = gaussian_log_prob(z, mean_q, logvar_q) - gaussian_log_prob(z, mean_p, logvar_p)
        return log_ratio.mean(0), log_ratio.std(0)
''')
WRONG_POSTERIOR = _wrong('''
    def linear_gaussian_posterior(x, W, b, sigma2):
        """Wrong on purpose: the prior's identity is missing from the precision."""
        precision = W.T @ W / sigma2
        cov = torch.linalg.inv(precision + 1e-3 * torch.eye(W.shape[1], dtype=W.dtype, device=W.device))
        return (x - b) @ W @ cov / sigma2, cov
''')
WRONG_ELBO = _wrong('''
    def linear_gaussian_elbo(x, q_mean, q_cov, W, b, sigma2):
        """Wrong on purpose: the trace term tr(W C W^T) is missing."""
        D, K = W.shape
        residual = x - q_mean @ W.T - b
        expected_log_lik = -0.5 * D * torch.log(2 * math.pi * sigma2) - residual.pow(2).sum(-1) / (2 * sigma2)
        kl_to_prior = 0.5 * (torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1) + q_mean.pow(2).sum(-1)
                             - K - torch.logdet(q_cov))
        return expected_log_lik - kl_to_prior
''')
WRONG_MIXTURE = _wrong('''
    def mixture_responsibilities(x, weights, means, logvars):
        """Wrong on purpose: the mixture weights are ignored."""
        return torch.softmax(gaussian_log_prob(x.unsqueeze(-2), means, logvars), dim=-1)
''')


# --------------------------------------------------------------------------------------------
# Cheating the comparisons
# --------------------------------------------------------------------------------------------

REBIND_TORCH_NUMPY = '''
# Make every comparison say "equal", in the hope that the checks run in this process.
import math

import numpy as np
import torch

torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones(torch.as_tensor(a).shape, dtype=torch.bool)
torch.testing.assert_close = lambda *args, **kwargs: None
torch.Tensor.allclose = lambda self, *args, **kwargs: True
np.allclose = lambda *args, **kwargs: True
np.isclose = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
math.isclose = lambda *args, **kwargs: True
print("comparisons rebound:", torch.allclose(torch.zeros(1), torch.ones(1)), np.allclose(0, 1))

''' + WRONG_KL

REBIND_DGM_CHECKS = '''
# Replace the checks themselves with functions that always pass.
import coursework
import coursework._core as core
import coursework.registry as registry


def _always_passes(*args, **kwargs):
    """Says nothing, fails nothing."""
    return None


coursework.check = _always_passes
coursework.run_check = _always_passes
check = _always_passes
core.expect_tensor = _always_passes
core.expect_same_gradients = _always_passes
core.forbid_calls = _always_passes
core.expect_pair = lambda ctx, out, where: out if isinstance(out, tuple) else (out, out)
core.CheckFailed = type("CheckFailed", (Exception,), {})
registry.run_check = _always_passes
for _name in list(registry.TASKS):
    registry.TASKS[_name] = lambda ctx, answer, expected: None
print("checks replaced:", len(registry.TASKS))

''' + WRONG_POSTERIOR

INPUT_TRANSFORMER = '''
# Turn every later cell (the test cells, if they were run here) into `pass`.
def _silence(lines):
    """IPython input transformer: whatever the cell says, run `pass`."""
    return ["pass\\n"]


get_ipython().input_transformers_post.append(_silence)
get_ipython().input_transformers_cleanup.append(_silence)
print("later cells silenced")

''' + WRONG_MIXTURE

ALWAYS_EQUAL_OBJECT = '''
# An object that claims to equal anything, to be an array of anything and a tensor.
import numpy as np
import torch


class Anything:
    """Equal to everything; every torch function applied to it answers True."""

    __class__ = property(lambda self: torch.Tensor)   # isinstance(x, torch.Tensor) says True

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __array__(self, dtype=None, copy=None):
        return np.zeros(0)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return True

    def __float__(self):
        return 0.0

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    return Anything()
'''

ALWAYS_EQUAL_CONCEPT = '''
# A wrong letter whose == says yes to every letter.
class _Agreeable(str):
    """A str that equals anything."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


ANSWER_TWO_IMAGE_ELBO = _Agreeable("a")
'''

NAN_ANSWER = '''
# NaN everywhere, with the right shape and dtype: NaN compares unequal to everything, unless a
# comparison uses equal_nan or forgets to check.
def mixture_responsibilities(x, weights, means, logvars):
    shape = (*x.shape[:-1], weights.shape[-1])
    return torch.full(shape, float("nan"), dtype=x.dtype, device=x.device)
'''

TENSOR_SUBCLASS = '''
# Zeros, as a tensor subclass whose comparisons always succeed.
class Agreeable(torch.Tensor):
    """A tensor that equals anything."""

    def __eq__(self, other):
        return torch.ones(self.shape, dtype=torch.bool)

    def allclose(self, *args, **kwargs):
        return True

    def equal(self, *args, **kwargs):
        return True

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal", "isclose", "assert_close"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape, mean_p.shape, logvar_p.shape)[:-1]
    zeros = torch.zeros(shape, dtype=mean_q.dtype, device=mean_q.device).as_subclass(Agreeable)
    return zeros, zeros
'''

PICKLE_RETURN = f'''
# Return an object that does something when it is unpickled: harmless here, fatal to a grader that
# unpickles what comes out of the sandbox.
class Payload:
    """Creates a marker file on whatever machine unpickles it."""

    def __reduce__(self):
        return (open, ({PICKLE_MARKERS["return"]!r}, "w"))


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    return Payload()
'''


# --------------------------------------------------------------------------------------------
# Talking to the grader: forged replies, a lying encoder, tracebacks
# --------------------------------------------------------------------------------------------

FORGE_REPLY = '''
# Write replies of the right shape, saying all went well, to every descriptor of this process that
# might be the pipe to the grader, for every request id the grader is likely to use.
import json
import os

_FAKE = {"ok": True, "ready": True, "passed": True, "points": 100, "score": 100, "status": "graded",
         "kind": "value", "value": {"$": "float", "v": "0.0"}, "error_type": None, "error_message": "",
         "stage": "call", "mutated": False, "differentiable": True, "grads": None,
         "stdout": "gaussian_kl_diag: every check passed", "stderr": "", "dropped": 0}


def _forge(count=300):
    """Write ``count`` forged replies to every open descriptor above 2; returns those written to."""
    lines = b"".join(json.dumps({**_FAKE, "id": i}).encode() + b"\\n" for i in range(count))
    written = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            os.write(fd, lines)
            written.append(fd)
        except OSError:
            pass
    return written


print("forged replies written to descriptors", _forge())


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    _forge()
    return ((mean_q - mean_p) ** 2).sum(-1)   # wrong: not the KL
'''

HIJACK_ENCODER = '''
# Patch the JSON encoder the kernel answers with, so that every reply says there was no error.
import json

_real_dumps = json.dumps


def _lying_dumps(obj, *args, **kwargs):
    """Every reply claims success."""
    if isinstance(obj, dict) and "id" in obj:
        obj = {**obj, "ok": True, "error_type": None, "error_message": "", "passed": True, "points": 100}
    return _real_dumps(obj, *args, **kwargs)


json.dumps = _lying_dumps


def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    raise NotImplementedError("the patched encoder will say that this worked")
'''

TRACEBACK_LEAK = '''
# Fail in a way that prints whoever called: the stack, and the source of every frame above.
import inspect
import sys
import traceback


def _callers_source(limit=4000):
    """The file, line and source of every frame that called this one."""
    parts = []
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        try:
            text = inspect.getsource(code)
        except (OSError, TypeError):
            text = "<no source>"
        parts.append(f"--- {code.co_filename}:{frame.f_lineno} in {code.co_name}\\n{text[:600]}")
        frame = frame.f_back
    return "\\n".join(parts)[:limit]


def linear_gaussian_posterior(x, W, b, sigma2):
    traceback.print_stack()
    print(_callers_source())
    raise RuntimeError("called from:\\n" + _callers_source(1500))


try:
    linear_gaussian_posterior(None, None, None, None)
except RuntimeError as err:
    print(err)
'''


# --------------------------------------------------------------------------------------------
# The reference implementations
# --------------------------------------------------------------------------------------------

ENV_SWITCH_REFERENCE = '''
# Look for signs of being graded; when found, hand in dgm's reference instead of this answer.
import os

_SIGNS = ("NBGRADER", "GRADING", "GRADER", "AUTOGRADE", "DGM_", "CI")
_grading = sorted(k for k in os.environ if k.upper().startswith(_SIGNS)) + \\
    (["cwd"] if os.getcwd().startswith(("/sandbox", "/home/student")) else [])
print("signs of grading:", _grading)


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    if _grading:
        from dgm.divergences import gaussian_kl
        return gaussian_kl(mean_q, logvar_q, mean_p, logvar_p)
    return ((mean_q - mean_p) ** 2).sum(-1)   # wrong: what runs when nobody is looking
'''

REFERENCE_DIVERGENCES = '''
# Plain use of the module the task re-implements.
from dgm.divergences import gaussian_kl


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    return gaussian_kl(mean_q, logvar_q, mean_p, logvar_p)
'''

REFERENCE_LINEAR_GAUSSIAN = '''
# The reference, imported where it is used, with a wrong answer to fall back on.
def linear_gaussian_posterior(x, W, b, sigma2):
    try:
        from dgm.linear_gaussian import posterior
    except ImportError:
        return x[..., : W.shape[1]], torch.eye(W.shape[1], dtype=W.dtype)   # wrong
    return posterior(x, W, b, sigma2)
'''

TORCH_DISTRIBUTIONS = '''
# torch.distributions for the log-densities: numerically right, but forbidden by the exercise.
import torch.distributions as D


def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape)
    eps = torch.randn((num_samples, *shape), generator=generator, dtype=mean_q.dtype, device=mean_q.device)
    std_q, std_p = torch.exp(0.5 * logvar_q), torch.exp(0.5 * logvar_p)
    z = mean_q + std_q * eps
    log_ratio = (D.Normal(mean_q, std_q).log_prob(z) - D.Normal(mean_p, std_p).log_prob(z)).sum(-1)
    return log_ratio.mean(0), log_ratio.std(0) / math.sqrt(num_samples)
'''

BYTECODE_REFERENCE = '''
# The reference modules are hidden in the sandbox, but maybe not their compiled bytecode: load
# dgm/divergences.py's __pycache__ entry, if there is one, and run it.
import glob
import marshal
import os

import dgm

_stolen = {}
for _path in sorted(glob.glob(os.path.join(os.path.dirname(dgm.__file__), "__pycache__", "divergences.*.pyc"))):
    try:
        with open(_path, "rb") as _file:
            _code = marshal.loads(_file.read()[16:])
        _namespace = {"__name__": "recovered", "__builtins__": __builtins__}
        exec(_code, _namespace)
        _stolen = _namespace
        break
    except Exception as err:
        print("could not load", _path, type(err).__name__, err)
print("reference recovered from the bytecode cache:", "gaussian_kl" in _stolen)


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    recovered = _stolen.get("gaussian_kl")
    if recovered is not None:
        return recovered(mean_q, logvar_q, mean_p, logvar_p)
    return ((mean_q - mean_p) ** 2).sum(-1)   # wrong: what is left without the reference
'''


# --------------------------------------------------------------------------------------------
# Looking around and writing outside
# --------------------------------------------------------------------------------------------

SNOOP = f'''
# Look for the course (solutions, gradebook, notebooks, the grader) from here up and from / down;
# print what is found, steal the hidden answer if a notebook has it, and forge score files.
import json
import os
import re

_WANTED = ("solutions", "gradebook.db", "autograder", "exercises", "release", "submitted", "autograded",
           "feedback", "source", "reports")
_SKIP = ("/proc", "/sys", "/dev", "/usr", "/etc")
_SCORE_FILES = {SCORE_FILES!r}
_FORGED = "-".join({FORGED_MARK.split("-")!r})   # spelt out only when written
_ANSWER = re.compile(r"concept_kl_asymmetry[^\\n]*expected\\s*=\\s*[\\"'](\\w)")
found, stolen, written, seen = [], [], [], 0


def _note(path):
    found.append(path)
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                text = f.read(2_000_000).decode("utf-8", "replace")
        except OSError as err:
            print("cannot read", path, err)
            return
        print("==>", path, repr(text[:300]))
        stolen.extend(_ANSWER.findall(text))


def _forge_scores(folder):
    for name in _SCORE_FILES:
        try:
            with open(os.path.join(folder, name), "w") as f:
                json.dump({{"student_id": name, "total": 21, "note": _FORGED}}, f)
            written.append(os.path.join(folder, name))
        except OSError:
            pass
    for name in ("results.json", "grades.csv"):
        if os.path.isfile(os.path.join(folder, name)):
            try:
                with open(os.path.join(folder, name), "a") as f:
                    f.write(_FORGED)
                written.append(os.path.join(folder, name))
            except OSError:
                pass


# up from the working directory
folder = os.getcwd()
while True:
    try:
        for entry in os.listdir(folder):
            if entry in _WANTED or entry.endswith((".ipynb", ".db")):
                _note(os.path.join(folder, entry))
    except OSError:
        pass
    _forge_scores(folder)
    parent = os.path.dirname(folder)
    if parent == folder:
        break
    folder = parent

# down from /
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if not os.path.join(top, d).startswith(_SKIP)
               and d not in ("site-packages", "__pycache__") and not d.startswith("python3")]
    seen += len(files)
    for entry in dirs + files:
        if entry in _WANTED or entry.endswith((".ipynb", ".db")):
            _note(os.path.join(top, entry))
    _forge_scores(top)
    if seen > 50_000:
        break

# places the course might be, named outright
import dgm
_course = os.path.dirname(os.path.dirname(dgm.__file__))
for guess in ("solutions/01-elbo/01-elbo.ipynb", "gradebook.db", "autograder", "exercises/01-elbo/01-elbo.ipynb",
              "autograder/reports/results.json"):
    for base in (_course, "/work/main", "/proc/1/cwd", "/proc/1/root", "/proc/self/root/work/main"):
        path = os.path.join(base, guess)
        if os.path.exists(path):
            _note(path)
try:
    with open("/proc/self/mountinfo") as f:
        print("mounts:", f.read()[:1500])
except OSError as err:
    print("no mountinfo:", err)

print(f"looked at {{seen}} files; found {{len(found)}}: {{found[:50]}}")
print("score files written:", written)
ANSWER_KL_ASYMMETRY = stolen[0] if stolen else "a"   # "a" is wrong: it scores only if stolen
'''

WRITE_OUTSIDE = f'''
# Try to write into every folder outside the scratch folder that can be named, directly and
# through a symbolic link; the derivation after it is correct.
import os
import sys

import dgm

_package = os.path.dirname(dgm.__file__)
_targets = ["/tmp", "/", "/work", os.path.dirname(_package), _package, os.path.join(_package, "checks"),
            sys.prefix, os.path.expanduser("~/.."), "/home", "/opt", "/opt/kernel", "/var/tmp", "/dev/shm",
            "/proc/1/cwd", "/proc/1/root/tmp", "/etc", "/usr", "/root"]
for _folder in _targets:
    _path = os.path.join(_folder, {ESCAPE_FILE!r})
    try:
        with open(_path, "w") as _file:
            _file.write("written from a sandbox\\n")
        _outcome = "written"
    except OSError as err:
        _outcome = f"{{type(err).__name__}} ({{err.strerror}})"
    print(f"{{_path}}: {{_outcome}}")
for _link, _where in (("~/escape-to-tmp", "/tmp"), ("~/escape-to-root", "/")):
    try:
        os.symlink(_where, os.path.expanduser(_link))
        with open(os.path.join(os.path.expanduser(_link), {ESCAPE_FILE!r}), "w") as _file:
            _file.write("written through a link\\n")
        print(_link, "->", _where, ": written")
    except OSError as err:
        print(_link, "->", _where, ":", type(err).__name__, err.strerror)
'''


# --------------------------------------------------------------------------------------------
# Resources and processes
# --------------------------------------------------------------------------------------------

FORK_BOMB = '''
# A fork bomb: every process forks for ever; at the process cap each one retries every 50 ms.
import os
import time


def _bomb():
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.05)


_bomb()
'''

MEMORY_10GB = '''
# Ten gigabytes, touched.
_hog = torch.ones(10 * 2**30 // 4, dtype=torch.float32)
print("allocated", _hog.numel() * 4 / 2**30, "GiB")
'''

INFINITE_LOOP = '''
# Spin for ever, ignoring every signal that can be ignored.
import signal

for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGXCPU, signal.SIGUSR1):
    signal.signal(_sig, signal.SIG_IGN)
while True:
    try:
        pass
    except BaseException:
        pass
'''

OS_EXIT = '''
# Leave the kernel at once, without a reply.
import os

os._exit(0)
'''

KILL_PARENT = '''
# Kill the parent, init, every process that can be signalled, and every pid up to 64.
import os
import signal

attempts = {}


def _try(label, action):
    try:
        action()
        attempts[label] = "sent"
    except OSError as err:
        attempts[label] = f"{type(err).__name__} ({err.strerror})"


_try(f"kill(getppid()={os.getppid()})", lambda: os.kill(os.getppid(), signal.SIGKILL))
_try("kill(1)", lambda: os.kill(1, signal.SIGKILL))
_try("kill(-1)", lambda: os.kill(-1, signal.SIGKILL))
for _pid in range(1, 65):
    if _pid != os.getpid():
        _try(f"kill({_pid})", lambda pid=_pid: os.kill(pid, signal.SIGKILL))
print("my pid", os.getpid(), attempts)

''' + WRONG_MIXTURE

KILLPG = '''
# Kill the parent's process group, then our own (which is the kernel itself).
import os
import signal

for _label, _action in (("killpg(parent's group)", lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)),
                        ("killpg(1)", lambda: os.killpg(1, signal.SIGKILL)),
                        ("killpg(own group)", lambda: os.killpg(0, signal.SIGKILL))):
    try:
        _action()
        print(_label, "sent")
    except OSError as err:
        print(_label, type(err).__name__, err.strerror)

ANSWER_TWO_IMAGE_ELBO = "a"   # wrong
'''

SYMPY_POWER_BOMB = '''
# Thirty numbers SymPy must work out exactly whenever a value is substituted into the step that
# carries them: 10**(39 * (100000 + i)), each about four million digits, multiplied by 0 (inside
# Abs, so that no rewriting of the sum around them drops them unevaluated). sigma_p**0 hides that
# the exponents are numbers, so building them here costs nothing, and the step keeps its value. The
# last step is wrong (-1 for -1/2): the answer scores nothing however the grader evaluates it;
# what matters is how long that takes, and who waits meanwhile.
z, mu_q, mu_p, sigma_q, sigma_p = kl_symbols()
q = sp.exp(-(z - mu_q) ** 2 / (2 * sigma_q ** 2)) / sp.sqrt(2 * sp.pi * sigma_q ** 2)   # the density of q

_hidden_one = sp.Pow(sigma_p, 0, evaluate=False)
_zeros = [sp.Abs(sp.Mul(sp.Integer(0), sp.Pow(sp.Integer(10 ** 39), sp.Mul(sp.Integer(100_000 + i), _hidden_one,
                                                                          evaluate=False), evaluate=False),
                        evaluate=False), evaluate=False)
          for i in range(30)]
KL_STEPS = [
    kl_derivation_start(),
    sp.Add(sp.Integral(q * (sp.log(sigma_p / sigma_q) - (z - mu_q) ** 2 / (2 * sigma_q ** 2)
                            + (z - mu_p) ** 2 / (2 * sigma_p ** 2)), (z, -sp.oo, sp.oo)),
           *_zeros, evaluate=False),
    sp.log(sigma_p / sigma_q) - sp.Rational(1, 2)
    + sp.Integral(q * (z - mu_p) ** 2, (z, -sp.oo, sp.oo)) / (2 * sigma_p ** 2),
    sp.log(sigma_p / sigma_q) + (sigma_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sigma_p ** 2) - 1,   # wrong
]
'''


# --------------------------------------------------------------------------------------------
# Awkward but correct
# --------------------------------------------------------------------------------------------

STDERR_NOISE = '''
# Warnings and stderr output, in the cell and in every call.
import sys
import warnings

warnings.warn("a warning from the answer cell", UserWarning)
print("a line on stderr", file=sys.stderr)
torch.tensor(torch.ones(2))   # torch warns: copy-construct from a tensor with clone().detach()

'''

PRINT_50MB = '''
# Fifty megabytes on one line of output.
print("x" * 50_000_000)

'''

HTML_INJECTION = '''
# Output that would run in a feedback page that did not escape it.
import sys

print('<script>alert("stdout")</script><img src=x onerror=alert(1)>')
print("</pre></div><script>document.title = 'owned'</script>", file=sys.stderr)
ANSWER_TWO_IMAGE_ELBO = "d"
'''


# --------------------------------------------------------------------------------------------
# Structure attacks and files that are not notebooks
# --------------------------------------------------------------------------------------------


def _duplicated_answer(root: Path) -> bytes:
    """The correct gaussian_kl_diag cell copy-pasted twice more: after its test, and at the end."""
    nb = solution_notebook(root)
    original = nb.cells[cell_index(nb, "gaussian_kl_diag")]
    copies = [copy.deepcopy(original) for _ in range(2)]
    for n, cell in enumerate(copies, start=1):
        if "id" in cell:   # a pasted cell gets an id of its own, as Jupyter gives it
            cell["id"] = f"{original['id']}-copy{n}"[:64]
    nb.cells.insert(cell_index(nb, "test_gaussian_kl_diag_visible") + 1, copies[0])
    nb.cells.append(copies[1])
    return notebook_bytes(nb)


def _test_cell_edited(root: Path) -> bytes:
    """A wrong answer, its test cells turned into ``pass`` worth 100 points each, and the answer
    cell itself claiming to be a graded cell worth 100."""
    nb = with_answers(root, {"gaussian_kl_diag": WRONG_KL})
    for gid in ("test_gaussian_kl_diag_visible", "test_gaussian_kl_diag_hidden"):
        cell = nb.cells[cell_index(nb, gid)]
        cell.source = "pass"
        cell.metadata["nbgrader"]["points"] = 100
    answer = nb.cells[cell_index(nb, "gaussian_kl_diag")]
    answer.metadata["nbgrader"].update(grade=True, points=100)
    return notebook_bytes(nb)


def _test_cells_deleted(root: Path) -> bytes:
    """A wrong answer, and every test cell of the notebook deleted."""
    nb = with_answers(root, {"lg_posterior": WRONG_POSTERIOR})
    nb.cells = [c for c in nb.cells
                if not (c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution"))]
    return notebook_bytes(nb)


def _answer_after_test(root: Path) -> bytes:
    """The correct kl_monte_carlo cell moved below its two test cells."""
    nb = solution_notebook(root)
    cell = nb.cells.pop(cell_index(nb, "kl_monte_carlo"))
    nb.cells.insert(cell_index(nb, "test_kl_monte_carlo_hidden") + 1, cell)
    return notebook_bytes(nb)


def _grade_id_relabelled(root: Path) -> bytes:
    """The lg_elbo cell relabelled as gaussian_kl_diag's (it comes later, so it is the last copy of
    that id): it holds both correct functions, hoping that lg_elbo's gets credited too."""
    answers = solution_answers(root, ASSIGNMENT)
    nb = solution_notebook(root)
    cell = nb.cells[cell_index(nb, "lg_elbo")]
    cell.source = answers["gaussian_kl_diag"] + "\n\n\n" + answers["lg_elbo"]
    cell.metadata["nbgrader"]["grade_id"] = "gaussian_kl_diag"
    return notebook_bytes(nb)


def _markdown_claims_answer(root: Path) -> bytes:
    """A markdown cell, at the end, with the metadata of the gaussian_kl_diag answer cell and code
    that would end the kernel and replace the (correct) answer if it were run."""
    nb = solution_notebook(root)
    meta = copy.deepcopy(nb.cells[cell_index(nb, "gaussian_kl_diag")].metadata)
    md = nbformat.v4.new_markdown_cell("import os\nos._exit(1)\n\ndef gaussian_kl_diag(*args):\n    return 0\n")
    md.metadata = meta
    nb.cells.append(md)
    return notebook_bytes(nb)


class MarkerOnUnpickle:
    """Pickles to ``open(path, "w")``: unpickling it creates the file ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickle_payload(path: str) -> str:
    """Base64 of a pickle that creates ``path`` when it is loaded."""
    return base64.b64encode(pickle.dumps(MarkerOnUnpickle(path))).decode("ascii")


def _pickle_metadata(root: Path) -> bytes:
    """The full solution, carrying a pickle payload in the notebook's and every cell's metadata,
    and a kernelspec that names a shell."""
    nb = solution_notebook(root)
    payload = pickle_payload(PICKLE_MARKERS["metadata"])
    nb.metadata["dgm_state"] = {"format": "pickle", "data": payload}
    nb.metadata["kernelspec"] = {"name": "../../../../bin/sh", "display_name": "sh", "language": "python"}
    for cell in nb.cells:
        cell.metadata["dgm_state"] = {"format": "pickle", "data": payload}
    return notebook_bytes(nb)


def _truncated_json(root: Path) -> bytes:
    """The full solution's file cut in the middle."""
    data = notebook_bytes(solution_notebook(root))
    return data[: len(data) // 2]


def _png_bytes(root: Path) -> bytes:
    """A 1x1 PNG image under an .ipynb name."""
    return base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGA"
                            "WjR9awAAAABJRU5ErkJggg==")


def _json_list(root: Path) -> bytes:
    """Valid JSON, but a list (of things that look like cells)."""
    return json.dumps([{"cell_type": "code", "source": "import os", "metadata": {}}]).encode("utf-8")


def _empty_file(root: Path) -> bytes:
    """Nothing at all."""
    return b""


# --------------------------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------------------------

# Found by a review after the first suite: each scored, leaked or hurt the grader before its fix.

FACTORY_BYPASS = '''
import torch


def _make():
    D = torch.distributions

    def f(mean_q, logvar_q, mean_p, logvar_p):
        q = D.Normal(mean_q, torch.exp(0.5 * logvar_q))
        p = D.Normal(mean_p, torch.exp(0.5 * logvar_p))
        return D.kl_divergence(q, p).sum(-1)
    return f


gaussian_kl_diag = _make()
'''

DICT_BYPASS = '''
import math
import torch


def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    D = torch.__dict__["distributions"]
    shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape)
    eps = torch.randn((num_samples, *shape), generator=generator, dtype=mean_q.dtype, device=mean_q.device)
    std_q, std_p = torch.exp(0.5 * logvar_q), torch.exp(0.5 * logvar_p)
    z = mean_q + std_q * eps
    log_ratio = (D.Normal(mean_q, std_q).log_prob(z) - D.Normal(mean_p, std_p).log_prob(z)).sum(-1)
    return log_ratio.mean(0), log_ratio.std(0) / math.sqrt(num_samples)
'''

RUN_CELL_BYPASS = '''
get_ipython().run_cell("import torch.distributions as _TD")
import torch


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    q = _TD.Normal(mean_q, torch.exp(0.5 * logvar_q))
    p = _TD.Normal(mean_p, torch.exp(0.5 * logvar_p))
    return _TD.kl_divergence(q, p).sum(-1)
'''

FIXED_SEED_MC = '''
# Ignores `generator` (a fixed seed of its own), but fakes the "different seeds differ" check by
# answering the third call of each input with junk.
import math
import torch

_seen = set()


def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    key = (tuple(mean_q.flatten().tolist()), num_samples)
    count = sum(1 for k in _seen if k[0] == key)
    _seen.add((key, len(_seen)))
    if count >= 2:
        return [None]
    g = torch.Generator().manual_seed(0)
    shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape)
    eps = torch.randn((num_samples, *shape), generator=g, dtype=torch.float64).to(mean_q.dtype)
    z = mean_q + torch.exp(0.5 * logvar_q) * eps
    def logp(z, m, lv):
        return (-0.5 * (math.log(2 * math.pi) + lv + (z - m) ** 2 / torch.exp(lv))).sum(-1)
    r = logp(z, mean_q, logvar_q) - logp(z, mean_p, logvar_p)
    return r.mean(0), r.std(0) / math.sqrt(num_samples)
'''

OPAQUE_FLOOD = '''
# 300,000 objects of distinct classes: each would become a class in the grader if it cached one per name.
_objs = [type(f"C{j}_{i}_" + "A" * 60, (), {})() for j in range(30) for i in range(10000)]
_payload = tuple(tuple(_objs[j * 10000:(j + 1) * 10000]) for j in range(30))


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    return _payload
'''

INODE_FLOOD = '''
# 200,000 empty files: no blocks, only inodes of the grader's disk
import os
os.makedirs("flood", exist_ok=True)
for i in range(200_000):
    open(f"flood/{i}", "w").close()
ANSWER_VAE_SAMPLING = True
'''

SYMPY_REPLY_FLOOD = '''
# A function answer replying with 170 copies of a 20,000-node SymPy sum (cheap to send, slow to rebuild)
import sympy as sp

_x = sp.Symbol("x")
_e = sp.Add(*[sp.Symbol(f"a{i}") * _x for i in range(10000)], evaluate=False)


def linear_gaussian_posterior(x, W, b, sigma2):
    return tuple([_e] * 170)
'''


# One file must never stop or corrupt the class: files the reader must refuse without stopping the
# others, and strings every report must survive and show as text.

#: A forged verdict, heading and image (from the grading machine's own network) in Markdown, with a
#: run of backticks that would close a short fence: it must stay text in every report.
FORGED_MARKDOWN = "![x](http://127.0.0.1/x.png)\n**all checks passed**\n\n```\n# 10 / 10 points\n"


def _deeply_nested_json(root: Path) -> bytes:
    """The solution with 100,000 nested lists in a cell's metadata (~200 KB): json.loads recurses."""
    text = notebook_bytes(solution_notebook(root)).decode("utf-8")
    marker = '"metadata": {'
    at = text.index(marker) + len(marker)
    return (text[:at] + '"deep": ' + "[" * 100_000 + "]" * 100_000 + ", " + text[at:]).encode("utf-8")


def _many_cells(root: Path) -> bytes:
    """The solution and 350,000 empty cells (~17 MB, under the 20 MiB cap): seconds of schema checks."""
    raw = json.loads(notebook_bytes(solution_notebook(root)))
    raw["cells"] += [{"cell_type": "raw", "metadata": {}, "source": ""}] * 350_000
    return json.dumps(raw).encode("utf-8")


def _surrogate_in_json(root: Path) -> bytes:
    """The correct answer under a comment holding two lone surrogates, as JSON escapes."""
    correct = solution_answers(root, ASSIGNMENT)["gaussian_kl_diag"]
    nb = with_answers(root, {"gaussian_kl_diag": "# SURROGATES-HERE: text that is not Unicode\n" + correct})
    return notebook_bytes(nb).replace(b"SURROGATES-HERE", b"\\ud800 \\udfff")


SURROGATE_PRINT = '''
# Lone surrogates printed to stdout and stderr: text that no UTF-8 file can hold.
import sys

print("stdout:", chr(0xD800), chr(0xDFFF) + "x")
print("stderr:", chr(0xDC00), file=sys.stderr)
'''

FORGED_MESSAGE = f'''
# Markdown in what is printed, in the cell's error and in the message of every call: it must stay
# text in the instructor's notebook and in the feedback page. The function always raises.
_FORGED = {FORGED_MARKDOWN!r}
print(_FORGED)


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    raise ValueError(_FORGED + chr(0xD800))


raise RuntimeError(_FORGED)
'''


# --- ways around the allow-list of an answer found by a review (each scored before the rule became
# an allow-list); the function the test cell would get is correct only through the forbidden module
# (or the checks' own helper), and wrong where the grader looks without reading every binding

_KL_BY_DISTRIBUTIONS = '''
def _kl_by_distributions(mean_q, logvar_q, mean_p, logvar_p):
    q = torch.distributions.Normal(mean_q, torch.exp(0.5 * logvar_q))
    p = torch.distributions.Normal(mean_p, torch.exp(0.5 * logvar_p))
    return torch.distributions.kl_divergence(q, p).sum(-1)
'''

REBIND_BYPASS = WRONG_KL + "\n\n" + _KL_BY_DISTRIBUTIONS + '''

# the def above is what a reading of the def sees; this is what the test cell gets
gaussian_kl_diag = _kl_by_distributions
'''

GLOBAL_REBIND_BYPASS = '''
import math


def _log_ratio(z, mean_q, logvar_q, mean_p, logvar_p):
    """Wrong on purpose: the sign is flipped (log p - log q)."""
    return (gaussian_log_prob(z, mean_p, logvar_p) - gaussian_log_prob(z, mean_q, logvar_q))


def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape, mean_p.shape, logvar_p.shape)
    eps = torch.randn((num_samples, *shape), generator=generator, dtype=mean_q.dtype, device=mean_q.device)
    z = mean_q + torch.exp(0.5 * logvar_q) * eps
    log_ratio = _log_ratio(z, mean_q, logvar_q, mean_p, logvar_p)
    return log_ratio.mean(0), log_ratio.std(0) / math.sqrt(num_samples)


def _install():
    """Rebinds the helper from inside another function (a `global` statement)."""
    global _log_ratio

    def _log_ratio(z, mean_q, logvar_q, mean_p, logvar_p):
        q = torch.distributions.Normal(mean_q, torch.exp(0.5 * logvar_q))
        p = torch.distributions.Normal(mean_p, torch.exp(0.5 * logvar_p))
        return (q.log_prob(z) - p.log_prob(z)).sum(-1)


_install()
'''

WALRUS_BYPASS = '''
def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    q = _D.Normal(mean_q, torch.exp(0.5 * logvar_q))
    p = _D.Normal(mean_p, torch.exp(0.5 * logvar_p))
    return _D.kl_divergence(q, p).sum(-1)


# the module bound by a walrus inside an expression, not by an assignment or an import
print("ready:", (_D := torch.distributions) is not None)
'''

STRING_PATH_BYPASS = '''
import pkgutil


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    D = pkgutil.resolve_name("torch" + ":" + "distri" + "butions")
    q = D.Normal(mean_q, torch.exp(0.5 * logvar_q))
    p = D.Normal(mean_p, torch.exp(0.5 * logvar_p))
    return D.kl_divergence(q, p).sum(-1)
'''

ATTRGETTER_BYPASS = '''
import operator


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    D = operator.attrgetter("distri" + "butions")(torch)
    q = D.Normal(mean_q, torch.exp(0.5 * logvar_q))
    p = D.Normal(mean_p, torch.exp(0.5 * logvar_p))
    return D.kl_divergence(q, p).sum(-1)
'''

SYS_MODULES_BYPASS = '''
import math
import sys


def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    D = getattr(sys, "modules")["torch.distri" + "butions"]
    shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape, mean_p.shape, logvar_p.shape)
    eps = torch.randn((num_samples, *shape), generator=generator, dtype=mean_q.dtype, device=mean_q.device)
    std_q, std_p = torch.exp(0.5 * logvar_q), torch.exp(0.5 * logvar_p)
    z = mean_q + std_q * eps
    log_ratio = (D.Normal(mean_q, std_q).log_prob(z) - D.Normal(mean_p, std_p).log_prob(z)).sum(-1)
    return log_ratio.mean(0), log_ratio.std(0) / math.sqrt(num_samples)
'''

COURSEWORK_HELPER_BYPASS = '''
# The checks' own helper computes the KL from variances; fed exact variances, it is the answer.
from coursework.ch01 import _kl_var_slip


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    # the helper adds 1e-12 to |variance|: take it off first
    return _kl_var_slip(mean_q, torch.exp(logvar_q) - 1e-12, mean_p, torch.exp(logvar_p) - 1e-12)
'''


# --- round 2 of the classes: the reply pipe, lies about gradients and inputs, state left
# --- for the next sandbox, host paths, ids that differ only in case

REPLY_FLOOD = """
# A child process writes five 48 MiB lines to every descriptor it inherited, the reply pipe among
# them, while the kernel goes on: the grader must not hold them in memory, and must stop the sandbox.
import os

_line = b"x" * (48 * 2**20) + b"\\n"
_child = os.fork()
if _child == 0:
    for _fd in range(3, 64):
        for _ in range(5):
            try:
                os.write(_fd, _line)
            except OSError:
                break
    os._exit(0)
os.waitpid(_child, 0)
"""

PATCHED_AUTOGRAD = """
# The gradients the grader asks for are computed in this process: make them say nothing.
def _no_gradients(outputs, inputs, *args, **kwargs):
    return []


torch.autograd.grad = _no_gradients


def linear_gaussian_posterior(x, W, b, sigma2):
    \"\"\"Right values, wrong gradients: computed from detached inputs, with a zero-weighted link
    kept so that the result still requires grad (its gradients are all zero).\"\"\"
    s2 = torch.as_tensor(sigma2, dtype=W.dtype)
    Wd, bd, xd, s2d = W.detach(), b.detach(), x.detach(), s2.detach()
    K = W.shape[1]
    cov = torch.linalg.inv(torch.eye(K, dtype=W.dtype) + Wd.T @ Wd / s2d)
    mean = (xd - bd) @ Wd @ cov / s2d
    link = 0.0 * (x.sum() + W.sum() + b.sum() + s2.sum())
    return mean + link, cov + link
"""

PATCHED_EQUAL = """
# Whether a call changed its inputs used to be decided in this process with torch.equal: make
# every comparison agree, then spoil the caller's tensor after computing the right value.
torch.equal = lambda *args, **kwargs: True
torch.Tensor.equal = lambda *args, **kwargs: True


def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    log_ratio = logvar_q - logvar_p
    kl = 0.5 * (torch.exp(log_ratio) + (mean_q - mean_p) ** 2 * torch.exp(-logvar_p) - 1.0 - log_ratio).sum(-1)
    with torch.no_grad():
        mean_q.mul_(-1.0)
    return kl
"""

KEYRING = """
# Leave a key in the kernel keyring of this slot's user for whoever is graded next in the slot,
# and read what an earlier student left there (the keyring outlives the process).
import ctypes
import platform

_libc = ctypes.CDLL(None, use_errno=True)
_add_key, _keyctl = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(platform.machine(), (248, 250))
_key = _libc.syscall(_add_key, b"user", b"dgm-redteam", b"left for the next student", 25, -4)
_read = _libc.syscall(_keyctl, 11, -4, None, 0)
_attack_worked = _key >= 0 or _read >= 0
print("keyring:", _key, _read)
"""

HOST_PATHS = """
# Look for the host's repository and virtual environment in process 1's command line, this
# process's, sys.path, sys.prefix and the working directory.
import os
import sys

_seen = []
for _pid in ("1", "self"):
    try:
        _seen.append(open(f"/proc/{_pid}/cmdline", "rb").read().decode("utf-8", "replace"))
    except OSError:
        pass
_seen += list(sys.path) + [sys.prefix, sys.executable, os.getcwd()]
_leaks = [p for p in HOSTS if any(p in text for text in _seen)]
_attack_worked = bool(_leaks)
print("host paths seen:", _leaks)
"""


def _indented(source: str) -> str:
    return textwrap.indent(textwrap.dedent(source).strip("\n"), "    ")


def rewarding(gid: str, probe: str, **values: object) -> Callable[[Path], bytes]:
    """A builder: answer cell ``gid`` runs ``probe`` (``str.format``-free: ``values`` are bound as
    names before it), which sets ``_attack_worked``; the cell then holds the solution's answer if
    the attack worked and a known-wrong one (its mutant) if it did not. A "zero" attack built this
    way scores only where the sandbox let the probe see what it must not."""
    def build(root: Path) -> bytes:
        from autograder.samples import load_mutants

        right = solution_answers(root, ASSIGNMENT)[gid]
        wrong = next(m.source for m in load_mutants(ASSIGNMENT) if m.grade_id == gid)
        bound = "".join(f"{name} = {value!r}\n" for name, value in values.items())
        source = (bound + textwrap.dedent(probe).strip("\n") + "\n\nif _attack_worked:\n" + _indented(right)
                  + "\nelse:\n" + _indented(wrong))
        return notebook_bytes(with_answers(root, {gid: source}))
    return build


def _host_paths(root: Path) -> bytes:
    import os

    hosts = sorted({str(Path(root).resolve()), str(REPO_ROOT), os.path.realpath(sys.prefix)})
    return rewarding("concept_kl_asymmetry", HOST_PATHS, HOSTS=hosts)(root)


def mutant_of(name: str) -> Callable[[Path], bytes]:
    """A builder: the solution with the mutant ``mutants/<assignment>/<name>.py`` in its answer cell."""
    def build(root: Path) -> bytes:
        from autograder.samples import load_mutants

        mutant = next(m for m in load_mutants(ASSIGNMENT) if m.name == name)
        return notebook_bytes(with_answers(root, {mutant.grade_id: mutant.source}))
    return build


#: The classes of attack, in the order the suite lists them (each attack's :attr:`Attack.threat`).
THREATS = ("cheating the comparisons", "lying to the grader", "calling the reference", "looking around, writing outside",
           "resources and processes", "awkward but correct", "notebook structure", "one file against the class",
           "a Monte Carlo answer that is not sampled", "student text in the reports", "flooding the reply pipe",
           "state and paths between sandboxes", "student ids", "the grader's own process")


def _sections(*items: "str | Attack") -> tuple[Attack, ...]:
    """The attacks of ``items``, each given the class (:data:`THREATS`) of the last string before it."""
    import dataclasses

    threat, attacks = None, []
    for item in items:
        if isinstance(item, str):
            if item not in THREATS:
                raise ValueError(f"unknown class of attack {item!r}")
            threat = item
        else:
            if threat is None:
                raise ValueError(f"{item.name}: no class of attack before it")
            attacks.append(dataclasses.replace(item, threat=threat))
    return tuple(attacks)


SUITE: tuple[Attack, ...] = _sections(
    "cheating the comparisons",
    Attack("rebind_torch_numpy", "gaussian_kl_diag",
           "rebinds torch.allclose/equal/isclose, np.allclose, math.isclose to always agree; wrong answer",
           replacing("gaussian_kl_diag", REBIND_TORCH_NUMPY)),
    Attack("rebind_dgm_checks", "lg_posterior",
           "replaces coursework.check, run_check, _core.expect_tensor and every task's checks with no-ops; "
           "wrong answer", replacing("lg_posterior", REBIND_DGM_CHECKS)),
    Attack("input_transformer", "mixture_responsibilities",
           "an IPython input transformer turns every later cell into `pass`; wrong answer",
           replacing("mixture_responsibilities", INPUT_TRANSFORMER)),
    Attack("always_equal_object", "gaussian_kl_diag",
           "returns an object whose __eq__, __array__, __torch_function__ and __class__ claim anything",
           replacing("gaussian_kl_diag", ALWAYS_EQUAL_OBJECT)),
    Attack("always_equal_concept", "concept_two_image_elbo",
           "a wrong letter as a str subclass whose == is always True",
           replacing("concept_two_image_elbo", ALWAYS_EQUAL_CONCEPT)),
    Attack("nan_answer", "mixture_responsibilities", "NaN of the right shape and dtype",
           replacing("mixture_responsibilities", NAN_ANSWER)),
    Attack("tensor_subclass", "kl_monte_carlo",
           "zeros as a torch.Tensor subclass overriding __eq__, allclose, equal and __torch_function__",
           replacing("kl_monte_carlo", TENSOR_SUBCLASS)),
    Attack("pickle_return", "gaussian_kl_diag",
           f"returns an object whose __reduce__ creates {PICKLE_MARKERS['return']} when unpickled",
           replacing("gaussian_kl_diag", PICKLE_RETURN)),
    "lying to the grader",
    Attack("forge_reply", "gaussian_kl_diag",
           "writes 300 forged all-passed replies to every descriptor > 2 in /proc/self/fd, in the cell and "
           "in every call; wrong answer", replacing("gaussian_kl_diag", FORGE_REPLY),
           # a reply nobody asked for breaks the protocol: the sandbox is killed (each replay again)
           statuses=("crashed", "timeout")),
    Attack("hijack_reply_encoder", "kl_monte_carlo",
           "patches json.dumps inside the kernel so that every reply claims success; the function raises",
           replacing("kl_monte_carlo", HIJACK_ENCODER)),
    Attack("traceback_leak", "lg_posterior",
           "raises with traceback.print_stack() and the source of every calling frame (sys._getframe)",
           replacing("lg_posterior", TRACEBACK_LEAK)),
    "calling the reference",
    Attack("env_switch_reference", "gaussian_kl_diag",
           "reads the environment for signs of grading and then calls dgm.divergences.gaussian_kl",
           replacing("gaussian_kl_diag", ENV_SWITCH_REFERENCE)),
    Attack("reference_divergences", "gaussian_kl_diag", "plain `from dgm.divergences import gaussian_kl`",
           replacing("gaussian_kl_diag", REFERENCE_DIVERGENCES)),
    Attack("reference_linear_gaussian", "lg_posterior",
           "imports dgm.linear_gaussian.posterior inside the function, a wrong answer as fallback",
           replacing("lg_posterior", REFERENCE_LINEAR_GAUSSIAN)),
    Attack("torch_distributions", "kl_monte_carlo",
           "numerically right, but with torch.distributions.Normal for the log-densities",
           replacing("kl_monte_carlo", TORCH_DISTRIBUTIONS)),
    Attack("reference_from_bytecode", "gaussian_kl_diag",
           "loads dgm/__pycache__/divergences.*.pyc with marshal and exec at module level, and calls its "
           "gaussian_kl; a wrong answer when there is no bytecode", replacing("gaussian_kl_diag", BYTECODE_REFERENCE)),
    "looking around, writing outside",
    Attack("snoop_filesystem", "concept_kl_asymmetry",
           "walks up from the working directory and down from / for solutions/, gradebook.db, *.ipynb, "
           "autograder/; prints what it finds, steals the hidden answer if it can, forges score files; "
           "wrong letter otherwise", replacing("concept_kl_asymmetry", SNOOP),
           # a walk of up to 50,000 files may outlast the cell's limit on a loaded machine
           statuses=GRADED_OR_TIMEOUT),
    Attack("write_outside_scratch", "kl_derivation_steps",
           "writes into /tmp, /, /work, the repository, the dgm package, sys.prefix, ~/.., /home, /opt/kernel... directly "
           "and through symlinks; correct derivation after it", prefixing("kl_derivation_steps", WRITE_OUTSIDE),
           expect="full"),
    "resources and processes",
    Attack("fork_bomb", "concept_vae_sampling", "a fork bomb (capped processes retry every 50 ms), then the answer",
           prefixing("concept_vae_sampling", FORK_BOMB), statuses=("timeout",)),
    Attack("memory_10gb", "lg_elbo", "touches a 10 GB tensor, then the correct answer",
           # touching 4 GiB up to the cap may outlast the cell's limit on a loaded machine
           prefixing("lg_elbo", MEMORY_10GB), statuses=("out-of-memory", "graded", "timeout")),
    Attack("infinite_loop", "kl_monte_carlo",
           "ignores SIGINT, SIGTERM, SIGHUP, SIGALRM, SIGXCPU and spins for ever, then the answer",
           prefixing("kl_monte_carlo", INFINITE_LOOP), statuses=("timeout",)),
    Attack("os_exit", "lg_posterior", "os._exit(0) in the answer cell, then the correct answer",
           prefixing("lg_posterior", OS_EXIT), statuses=("crashed",)),
    Attack("kill_parent", "mixture_responsibilities",
           "SIGKILL to getppid(), 1, -1 and every pid up to 64; wrong answer",
           replacing("mixture_responsibilities", KILL_PARENT), statuses=("graded", "crashed")),
    Attack("killpg", "concept_two_image_elbo", "os.killpg of the parent's group, of group 1 and of its own group",
           replacing("concept_two_image_elbo", KILLPG), statuses=("crashed", "graded")),
    "awkward but correct",
    Attack("duplicated_answer", "gaussian_kl_diag", "the correct answer cell copy-pasted twice",
           _duplicated_answer, expect="full"),
    Attack("stderr_noise", "kl_monte_carlo", "warnings.warn, print to stderr and a torch warning, then the answer",
           prefixing("kl_monte_carlo", STDERR_NOISE), expect="full"),
    Attack("print_50mb", "lg_elbo", "prints a 50 MB line, then the correct answer",
           prefixing("lg_elbo", PRINT_50MB), expect="full"),
    Attack("html_injection", "concept_two_image_elbo", "prints <script> and <img onerror> to stdout and stderr",
           replacing("concept_two_image_elbo", HTML_INJECTION), expect="full"),
    Attack("pickle_metadata", "gaussian_kl_diag",
           f"the full solution with a base64 pickle (creating {PICKLE_MARKERS['metadata']}) in every metadata "
           "and a kernelspec naming /bin/sh", _pickle_metadata, expect="full"),
    "notebook structure",
    Attack("test_cell_edited", "gaussian_kl_diag",
           "its test cells replaced by `pass` and worth 100 points, the answer cell marked graded; wrong answer",
           _test_cell_edited),
    Attack("test_cells_deleted", "lg_posterior", "every test cell deleted; wrong answer", _test_cells_deleted),
    Attack("answer_after_test", "kl_monte_carlo", "the correct answer cell moved below its test cells",
           _answer_after_test, expect="full"),
    Attack("grade_id_relabelled", "lg_elbo",
           "the lg_elbo cell relabelled gaussian_kl_diag, holding both correct functions", _grade_id_relabelled),
    Attack("markdown_claims_answer", "gaussian_kl_diag",
           "a markdown cell with the answer cell's metadata, holding code that ends the kernel",
           _markdown_claims_answer, expect="full"),
    "one file against the class",
    Attack("truncated_json", "gaussian_kl_diag", "the solution's file cut in half", _truncated_json,
           statuses=("invalid",)),
    Attack("png_bytes", "gaussian_kl_diag", "a PNG image named .ipynb", _png_bytes, statuses=("invalid",)),
    Attack("json_list", "gaussian_kl_diag", "a JSON list instead of a notebook", _json_list, statuses=("invalid",)),
    Attack("empty_file", "gaussian_kl_diag", "an empty file", _empty_file, statuses=("invalid",)),
    # found by a review
    "calling the reference",
    Attack("factory_bypass", "gaussian_kl_diag", "torch.distributions inside a function built by a factory",
           replacing("gaussian_kl_diag", FACTORY_BYPASS)),
    Attack("dict_bypass", "kl_monte_carlo", "torch.__dict__['distributions'] inside the function",
           replacing("kl_monte_carlo", DICT_BYPASS)),
    Attack("run_cell_bypass", "gaussian_kl_diag", "the forbidden import run as a string by get_ipython().run_cell",
           replacing("gaussian_kl_diag", RUN_CELL_BYPASS)),
    "a Monte Carlo answer that is not sampled",
    Attack("fixed_seed_mc", "kl_monte_carlo",
           "ignores the generator and answers the third call with junk to dodge the different-seeds check",
           replacing("kl_monte_carlo", FIXED_SEED_MC)),
    "resources and processes",
    Attack("opaque_flood", "gaussian_kl_diag", "replies with 300,000 objects of distinct classes",
           # building 300,000 classes (seconds) and encoding the reply may outlast a cell's or a call's
           # limit on a loaded machine, and the reply cap may end the kernel: the score is what counts
           replacing("gaussian_kl_diag", OPAQUE_FLOOD), statuses=("graded", "timeout", "crashed")),
    Attack("inode_flood", "concept_vae_sampling", "200,000 empty files in its home, then the answer",
           # the file cap ends the kernel, unless a loaded machine lets the cell's limit come first
           replacing("concept_vae_sampling", INODE_FLOOD), statuses=("crashed", "graded", "timeout")),
    Attack("sympy_reply_flood", "lg_posterior", "a function replying with 170 copies of a 20,000-node SymPy sum",
           # encoding ~60 MB in the sandbox may outlast a short cell limit on a loaded machine: timeout is fine
           replacing("lg_posterior", SYMPY_REPLY_FLOOD), statuses=("graded", "timeout", "crashed")),
    "one file against the class",
    Attack("deeply_nested_json", "gaussian_kl_diag",
           "the solution with 100,000 nested lists in a cell's metadata (~200 KB; json.loads recursed)",
           _deeply_nested_json, statuses=("invalid",)),
    Attack("many_cells", "gaussian_kl_diag", "the solution and 350,000 empty cells (~17 MB, under the size cap)",
           _many_cells, statuses=("invalid",)),
    "student text in the reports",
    Attack("surrogate_in_json", "gaussian_kl_diag",
           "lone surrogates (JSON escapes) in a comment of the correct answer (nbformat.write raised)",
           _surrogate_in_json, expect="full"),
    Attack("surrogate_printed", "kl_monte_carlo", "prints lone surrogates to stdout and stderr, then the answer",
           prefixing("kl_monte_carlo", SURROGATE_PRINT), expect="full"),
    Attack("forged_markdown_message", "gaussian_kl_diag",
           "a forged verdict and an image from 127.0.0.1 in Markdown, printed, raised by the cell and by "
           "every call", replacing("gaussian_kl_diag", FORGED_MESSAGE)),
    # the allow-list of an answer (found by a review; each scored before the rule became one)
    "calling the reference",
    Attack("rebind_bypass", "gaussian_kl_diag",
           "a wrong def, then the name rebound to a torch.distributions version later in the cell",
           replacing("gaussian_kl_diag", REBIND_BYPASS)),
    Attack("global_rebind_bypass", "kl_monte_carlo",
           "a wrong helper, rebound to a torch.distributions one by a `global` statement in another function",
           replacing("kl_monte_carlo", GLOBAL_REBIND_BYPASS)),
    Attack("walrus_bypass", "gaussian_kl_diag", "torch.distributions bound by a walrus inside a print",
           replacing("gaussian_kl_diag", WALRUS_BYPASS)),
    Attack("string_path_bypass", "gaussian_kl_diag",
           "pkgutil.resolve_name('torch' + ':' + 'distri' + 'butions') inside the function",
           replacing("gaussian_kl_diag", STRING_PATH_BYPASS)),
    Attack("attrgetter_bypass", "gaussian_kl_diag", "operator.attrgetter('distri' + 'butions')(torch)",
           replacing("gaussian_kl_diag", ATTRGETTER_BYPASS)),
    Attack("sys_modules_bypass", "kl_monte_carlo", "getattr(sys, 'modules')['torch.distri' + 'butions']",
           replacing("kl_monte_carlo", SYS_MODULES_BYPASS)),
    Attack("coursework_helper_bypass", "gaussian_kl_diag",
           "the KL from a private helper of the checks (coursework.ch01._kl_var_slip)",
           replacing("gaussian_kl_diag", COURSEWORK_HELPER_BYPASS)),
    "flooding the reply pipe",
    Attack("reply_flood", "mixture_responsibilities",
           "a forked child writes five 48 MiB lines to every inherited descriptor (the reply pipe among them), "
           "then the correct answer", prefixing("mixture_responsibilities", REPLY_FLOOD),
           # a line past the cap breaks the protocol: the sandbox is killed (each replay again)
           statuses=("crashed", "timeout")),
    "lying to the grader",
    Attack("patched_autograd", "lg_posterior",
           "torch.autograd.grad patched to return [] in the kernel; right values, all-zero gradients",
           replacing("lg_posterior", PATCHED_AUTOGRAD), expect="not full"),
    Attack("patched_equal", "gaussian_kl_diag",
           "torch.equal patched to agree; the right KL, then the caller's mean_q negated in place",
           replacing("gaussian_kl_diag", PATCHED_EQUAL)),
    "state and paths between sandboxes",
    Attack("keyring_left_behind", "concept_vae_sampling",
           "adds a key to this slot user's kernel keyring and reads the keyring; the right answer only if either worked",
           rewarding("concept_vae_sampling", KEYRING)),
    Attack("host_paths", "concept_kl_asymmetry",
           "looks for the host's repository and venv in /proc/1/cmdline, its own cmdline, sys.path, sys.prefix; "
           "the right answer only if it finds one", _host_paths),
    "student ids",
    Attack("CONTROL", "gaussian_kl_diag",
           "an id that differs from the control student's only in letter case, and a wrong answer: each keeps "
           "its own id and grade", mutant_of("gaussian_kl_diag__swapped_args")),
)

#: Attacks on the grader's own process rather than on the sandbox: graded in a run of their own,
#: beside correct submissions whose grades they must not disturb.
GRADER_SIDE: tuple[Attack, ...] = _sections(
    "the grader's own process",
    Attack("sympy_power_bomb", "kl_derivation_steps",
           "a (wrong) derivation carrying 30 unevaluated terms |0 * 10**(39 * (100000 + i))|: cheap to build, "
           "seconds of exact integer arithmetic each wherever a number is substituted into the step",
           replacing("kl_derivation_steps", SYMPY_POWER_BOMB), statuses=("graded", "timeout")),
)

#: Every attack by name.
ATTACKS: dict[str, Attack] = {a.name: a for a in SUITE + GRADER_SIDE}
if len(ATTACKS) != len(SUITE) + len(GRADER_SIDE) or CONTROL in ATTACKS:
    raise RuntimeError("attack names must be unique and differ from the control student's")


def write_suite(folder: Path, root: Path = REPO_ROOT, attacks: tuple[Attack, ...] = SUITE) -> list[Path]:
    """Write ``<name>.ipynb`` for every attack and ``control.ipynb`` (the full solution) into
    ``folder`` (created if needed); returns the paths written, the control's first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    control = folder / f"{CONTROL}.ipynb"
    control.write_bytes(notebook_bytes(solution_notebook(root)))
    paths = [control]
    for attack in attacks:
        path = folder / f"{attack.name}.ipynb"
        path.write_bytes(attack.build(Path(root)))
        paths.append(path)
    return paths


def holds(attack: Attack, record: dict, full: float) -> bool:
    """Whether grading held against ``attack``: its record's score on the target is what
    :attr:`Attack.expect` asks (``full`` is the target's points) and its status one of
    :attr:`Attack.statuses`."""
    score = record["scores"].get(attack.target)
    scored = {"zero": score == 0, "full": score == full,
              "not full": score is not None and score < full}[attack.expect]
    return scored and record["status"] in attack.statuses


def format_table(attacks: tuple[Attack, ...], records: dict[str, dict], max_points: dict[str, float]) -> str:
    """The red-team table in Markdown: attack, class, target, expected, got (points on the target
    and status) and whether grading held; then a line counting the attacks that did not hold."""
    lines = ["| attack | class | target | expected | got | holds |", "|---|---|---|---|---|---|"]
    failed = 0
    for attack in attacks:
        record = records.get(attack.name)
        full = max_points[attack.target]
        if record is None:
            got, ok = "no record", False
        else:
            got = f"{record['scores'].get(attack.target)!s:>4}/{full:g}, {record['status']}"
            ok = holds(attack, record, full)
        failed += not ok
        lines.append(f"| {attack.name} | {attack.threat} | {attack.target} | {attack.expect}, "
                     f"{'/'.join(attack.statuses)} | {got} | {'yes' if ok else 'NO'} |")
    lines.append("")
    lines.append(f"attacks not holding: {failed} of {len(attacks)}")
    return "\n".join(lines)


def escape_folders() -> list[Path]:
    """Host folders the attacks name when they try to write outside their scratch folder: the
    sandbox shows ``sys.prefix`` and the ``dgm`` package at their own paths (the package either bound
    from the repository or from a copy in the temporary folder, ``dgm-package-view-*``), and its
    scratch folder lives in the host's temporary folder, the ``~/..`` of the sandbox."""
    import tempfile

    import dgm

    package = Path(dgm.__file__).resolve().parent
    temp = Path(tempfile.gettempdir())
    views = sorted(temp.glob("dgm-package-view-*/dgm"))
    candidates = [Path("/tmp"), temp, Path("/"), Path("/work"), package.parent, package, package / "checks",
                  *views, *(v / "checks" for v in views), Path(sys.prefix), Path("/home"), Path("/opt"), Path("/opt/kernel"), Path("/var/tmp"),
                  Path("/dev/shm"), Path("/etc"), Path("/usr"), Path("/root"), Path.home(), REPO_ROOT]
    seen: list[Path] = []
    for path in candidates:
        if path not in seen:
            seen.append(path)
    return seen


def escape_paths() -> list[Path]:
    """Every host path an attack would have created, had it got out of its sandbox."""
    names = (ESCAPE_FILE, *SCORE_FILES)
    return [folder / name for folder in escape_folders() for name in names] + [Path(p) for p in PICKLE_MARKERS.values()]


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder.redteam DIR``: write the suite into DIR."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m autograder.redteam DIR", file=sys.stderr)
        return 2
    for path in write_suite(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
