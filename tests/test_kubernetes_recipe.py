"""docs/grading.md's Kubernetes recipe: its manifests checked against the Kubernetes API schema, every
``python -m autograder`` command of the cluster recipes parsed by our own command line, and the
Indexed Job's container script run here, one index after the other, as the pods would run it.

No cluster is brought up (a kind/k3s cluster needs images and network this course does without).
What a cluster would refuse or do is checked piece by piece instead:

* **The schema.** Every manifest is validated with ``kubernetes-validate`` (pinned in
  requirements.txt; it ships the OpenAPI schemas of every Kubernetes release, so nothing is
  downloaded), in strict mode (an unknown field — a typo such as ``completionsMode`` — is an
  error, as ``kubectl apply --validate=strict`` would make it), for the oldest release the guide
  says it needs (1.30: ``appArmorProfile``) and the newest the package knows. The guide's note that
  ``appArmorProfile`` needs 1.30 is checked too: 1.29's schema refuses it.
* **What the schema cannot see.** The manifests agree with each other and with the script: the
  shard count in ``SHARDS`` is ``completions``, ``--workers`` is the CPU request and limit, the
  memory limit holds every worker at the sandbox's address-space cap, the claim, namespace, image
  and working directory are the same in both Jobs, the grading Job writes where the merge reads, and
  the ``kubectl`` commands name the Jobs that exist.
* **Our command line.** Every ``python -m autograder`` command in the cluster section (the
  Kubernetes Jobs' scripts, the Slurm scripts, the sharding check) is parsed by the grader's own
  argument parser, with the shell variables set as the Job or the array would set them: an option
  that does not exist, or a value of the wrong type, fails here.
* **The script runs.** The grading Job's container script is run with ``bash`` for every index
  ``0 … completions-1`` (environment from the manifest, ``JOB_COMPLETION_INDEX`` as Kubernetes sets
  it, the volume's paths mapped to a temporary folder), then the merge Job's script; the merged
  ``grades.csv`` equals an unsharded run with the same seed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate  # pinned in requirements.txt: a missing package is an error, never a skip
import pytest
import yaml

from autograder.__main__ import _parser
from autograder.course import REPO_ROOT
from autograder.samples import SAMPLES_DIR
from autograder.shards import parse_shard


DOC = REPO_ROOT / "docs" / "grading.md"
#: The oldest Kubernetes release the recipe needs (the guide: appArmorProfile, 1.30 or later).
OLDEST = "1.30.0"
#: The sandbox's address-space cap per worker (docs/grading.md: "its 4 GiB cap").
WORKER_CAP_GIB = 4


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^\1 |\Z)", text, flags=re.S | re.M)
    assert match, f"docs/grading.md has no '{title}' section"
    return match.group(2)


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def manifests() -> dict[str, dict]:
    """Every manifest of the Kubernetes section, by ``Kind/name``."""
    docs = {}
    for block in blocks(section("Kubernetes"), "yaml"):
        for doc in yaml.safe_load_all(block):
            if doc is not None:
                key = f"{doc['kind']}/{doc['metadata']['name']}"
                assert key not in docs, f"{key} appears twice in the Kubernetes recipe"
                docs[key] = doc
    return docs


def jobs() -> tuple[dict, dict]:
    """(grading Job, merge Job)."""
    found = [d for d in manifests().values() if d["kind"] == "Job"]
    grade = [d for d in found if d["spec"].get("completionMode") == "Indexed"]
    merge = [d for d in found if d["spec"].get("completionMode") != "Indexed"]
    assert len(grade) == len(merge) == 1, "the recipe should have one Indexed Job that grades and one Job that merges"
    return grade[0], merge[0]


def container(job: dict) -> dict:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def quantity_gib(q: str) -> float:
    units = {"Ki": 2 ** -20, "Mi": 2 ** -10, "Gi": 1, "Ti": 2 ** 10}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)", q)
    assert match, f"unexpected quantity {q!r}"
    return float(match.group(1)) * units[match.group(2)]


# --- the schema ----------------------------------------------------------------------------------------

def test_the_recipe_has_the_manifests_the_guide_describes():
    assert sorted(manifests()) == ["Job/grade-01-elbo", "Job/merge-01-elbo", "Namespace/dgm-grading",
                                   "PersistentVolumeClaim/grading-data"]


@pytest.mark.parametrize("version", [OLDEST, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("key", sorted(manifests()))
def test_every_manifest_is_valid_for_the_api_in_strict_mode(key, version):
    kubernetes_validate.validate(manifests()[key], version, strict=True)


def test_strict_validation_catches_a_misspelt_field_and_the_guides_version_note_holds():
    """The check has teeth: a misspelt field fails; and appArmorProfile is refused by 1.29's schema,
    as the guide's comment says (so OLDEST is right)."""
    grade, _ = jobs()
    typo = copy.deepcopy(grade)
    typo["spec"]["completionsMode"] = typo["spec"].pop("completionMode")
    with pytest.raises(kubernetes_validate.ValidationError, match="completionsMode"):
        kubernetes_validate.validate(typo, OLDEST, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError, match="appArmorProfile"):
        kubernetes_validate.validate(grade, "1.29.0", strict=True)
    assert "appArmorProfile" in container(grade)["securityContext"]
    assert "# Kubernetes 1.30 or later" in section("Kubernetes")


# --- what the schema cannot see --------------------------------------------------------------------------

def test_the_two_jobs_and_the_volume_agree_with_each_other():
    docs = manifests()
    grade, merge = jobs()
    (namespace,) = [d["metadata"]["name"] for d in docs.values() if d["kind"] == "Namespace"]
    (claim,) = [d for d in docs.values() if d["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every node mounts the same volume"
    for job in (grade, merge):
        pod = job["spec"]["template"]["spec"]
        assert job["metadata"]["namespace"] == claim["metadata"]["namespace"] == namespace
        assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"data": claim["metadata"]["name"]}
    gc, mc = container(grade), container(merge)
    assert gc["image"] == mc["image"] and gc["workingDir"] == mc["workingDir"]
    mounts = {m["mountPath"]: m for m in gc["volumeMounts"]}
    assert mounts["/data/submissions"]["subPath"] == "submissions" and mounts["/data/submissions"]["readOnly"]
    assert mounts["/data/out"]["subPath"] == "out" and not mounts["/data/out"].get("readOnly")
    assert {m["mountPath"]: m["subPath"] for m in mc["volumeMounts"]} == {"/data/out": "out"}
    # the merge reads what the shards write
    assert '--out "/data/out/shard-${JOB_COMPLETION_INDEX}"' in gc["args"][0]
    assert "merge /data/out/final /data/out/shard-*" in mc["args"][0]
    # the merge runs no student code: no privilege
    assert mc["securityContext"] == {"allowPrivilegeEscalation": False}


def test_shards_workers_and_resources_are_consistent():
    grade, _ = jobs()
    spec, c = grade["spec"], container(grade)
    env = env_of(c)
    assert int(env["SHARDS"]) == spec["completions"], "SHARDS must equal completions"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    assert spec["maxFailedIndexes"] == 0, "one failed shard must fail the Job (then the merge is not started)"
    workers = int(env["WORKERS"])
    assert str(workers) == c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"]
    assert quantity_gib(c["resources"]["limits"]["memory"]) >= workers * WORKER_CAP_GIB + 1
    assert c["securityContext"]["runAsUser"] == 0 and c["securityContext"]["capabilities"]["add"] == ["SYS_ADMIN"]
    assert 0 <= int(env["SEED"]) < 2 ** 63
    # the script runs with the shell's index, not Kubernetes' $(...) expansion (see the guide's note)
    assert c["command"] == ["/bin/bash", "-c"] and "$(JOB_COMPLETION_INDEX)" not in c["args"][0]


def test_the_kubectl_commands_name_jobs_of_the_recipe():
    names = {d["metadata"]["name"] for d in manifests().values() if d["kind"] == "Job"}
    (namespace,) = {d["metadata"]["name"] for d in manifests().values() if d["kind"] == "Namespace"}
    commands = [line.strip() for b in blocks(section("Kubernetes"), "bash") for line in b.splitlines()
                if line.strip().startswith("kubectl")]
    assert commands, "the Kubernetes section has no kubectl commands"
    for cmd in commands:
        words = shlex.split(cmd, comments=True)
        if "-n" in words:
            assert words[words.index("-n") + 1] == namespace, cmd
        for word in words:
            if word.startswith("job/"):
                assert word[4:] in names, f"{cmd}: no Job {word[4:]} in the recipe"
        if words[1] == "apply":
            assert words[words.index("-f") + 1] in ("grading.yaml", "merge.yaml"), cmd
    for name, text in (("grading.yaml", "# grading.yaml"), ("merge.yaml", "# merge.yaml")):
        assert any(b.startswith(text) for b in blocks(section("Kubernetes"), "yaml")), name


# --- our command line ------------------------------------------------------------------------------------

#: What the shell variables of the recipes hold when they run (a Job's env, an array task's).
SHELL_VALUES = {"JOB_COMPLETION_INDEX": "3", "SHARDS": "8", "SEED": "1860723441086527013", "WORKERS": "4",
                "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_CPUS_PER_TASK": "8",
                "DATA": "/shared/grading/01-elbo", "COURSE": "/shared/dgm-course", "i": "1"}


def autograder_commands() -> list[str]:
    """Every ``python -m autograder ...`` command of the cluster section, continuation lines joined."""
    text = section("Grading on a cluster")
    found = []
    for block in blocks(text, "bash") + blocks(text, "yaml"):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            match = re.search(r"(?:\.venv/bin/)?python -m autograder (.*)$", line)
            if match:
                found.append(match.group(1).strip())
    return found


def test_the_cluster_section_runs_grade_and_merge_commands():
    cmds = autograder_commands()
    assert sum(c.startswith("grade ") for c in cmds) >= 3 and sum(c.startswith("merge ") for c in cmds) >= 3, cmds


@pytest.mark.parametrize("command", autograder_commands())
def test_every_autograder_command_of_the_recipes_parses(command):
    def expand(match):
        name = match.group(1) or match.group(2)
        assert name in SHELL_VALUES, f"{command}: unknown shell variable {name}"
        return SHELL_VALUES[name]

    words = [re.sub(r"\$\{(\w+)\}|\$(\w+)", expand, w) for w in shlex.split(command)]
    args = _parser().parse_args(words)   # an unknown option or a wrong type: SystemExit, the test fails
    if args.command == "grade":
        assert args.seed is not None and args.no_progress, f"{command}: every shard needs the run's --seed"
        assert args.assignment == "01-elbo" and args.workers is not None and args.out is not None
        if args.shard is not None:
            assert parse_shard(args.shard)[1] in (2, 8)
    else:
        assert args.command == "merge" and args.parts


# --- the script runs ---------------------------------------------------------------------------------------

def localised(script: str, data: Path) -> str:
    """The container's script with the volume's mount points mapped to ``data``."""
    assert script.count("/data/") >= 2
    return script.replace("/data/", f"{data}/")


@pytest.mark.slow
def test_the_indexed_jobs_script_grades_every_index_and_the_merge_equals_an_unsharded_run(tmp_path):
    grade, merge = jobs()
    gc, mc = container(grade), container(merge)
    env = env_of(gc)
    data = tmp_path / "data"
    (data / "submissions").mkdir(parents=True)
    (data / "out").mkdir()
    for nb in sorted((REPO_ROOT / SAMPLES_DIR).glob("*.ipynb")):
        shutil.copyfile(nb, data / "submissions" / nb.name)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
    script = localised(gc["args"][0], data)
    # the pod's working directory is the repository in the image: here, this checkout
    for index in range(grade["spec"]["completions"]):
        r = subprocess.run([*gc["command"], script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                           env={**base, **env, "JOB_COMPLETION_INDEX": str(index)})
        assert r.returncode == 0, f"index {index}: {r.stdout}\n{r.stderr}"
        assert f"shard {index}/{env['SHARDS']} of 01-elbo" in r.stdout, r.stdout
    r = subprocess.run([*mc["command"], localised(mc["args"][0], data)], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=600, env=base)
    assert r.returncode == 0, r.stdout + r.stderr
    whole = tmp_path / "whole"
    r = subprocess.run([sys.executable, "-m", "autograder", "grade", str(data / "submissions"), "--assignment", "01-elbo",
                        "--out", str(whole), "--workers", "2", "--seed", env["SEED"], "--no-progress"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    final = data / "out" / "final"
    assert (final / "grades.csv").read_text() == (whole / "grades.csv").read_text()
    merged, alone = (json.loads((d / "results.json").read_text()) for d in (final, whole))

    def comparable(results):
        return [{k: v for k, v in s.items() if k != "seconds"} for s in results["submissions"]]

    assert comparable(merged) == comparable(alone) and merged["seed"] == alone["seed"] == env["SEED"]
