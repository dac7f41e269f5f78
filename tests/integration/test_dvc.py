"""DVC for real, on the CI-size config in a fresh clone: `dvc repro`, a clean `dvc status`, an md5 in dvc.lock for
every artifact, push/delete/pull restoring identical bytes with nothing retrained, and `dvc exp run -S` rerunning
only the stages that depend on the changed parameter."""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import CI_CONFIG, copy_checkout, run

pytestmark = pytest.mark.integration

GENERATED = ("data", "models", "results")


def all_bytes(repo) -> dict[str, str]:
    """md5 of every generated file (the folders' README.md are git's, not DVC's)."""
    return {str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest()
            for part in GENERATED for p in sorted((repo / part).rglob("*"))
            if p.is_file() and p.relative_to(repo / part) != Path("README.md")}


def ran_stages(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", out))


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory):
    repo = copy_checkout(tmp_path_factory.mktemp("dvc"))
    run(["snakemake", "dvc_yaml", "--cores", "1", "--configfile", CI_CONFIG, "--forcerun", "dvc_yaml"], repo,
        "dvc: generate dvc.yaml for the CI config")
    # A clone is a git repository; experiments need a commit to branch from.
    for step, cmd in (("init", ["git", "init", "-q"]), ("add", ["git", "add", "-A"]),
                      ("commit", ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "ci"])):
        run(cmd, repo, f"dvc: git {step} of the clone")
    proc = run(["orchmoe", "warm", "--", "dvc", "repro"], repo, "dvc: dvc repro (CI config, warm)", timeout=1800)
    return repo, proc.stdout + proc.stderr


def test_repro_then_status_clean_and_lock_has_every_md5(dvc_repo):
    repo, out = dvc_repo
    assert ran_stages(out) >= {"data", "train", "evaluate", "tables", "figures"}, out[-2000:]
    status = run(["dvc", "status"], repo, "dvc: dvc status").stdout
    assert "up to date" in status, status
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    declared = {next(iter(o)) if isinstance(o, dict) else o
                for s in stages.values() for key in ("outs", "metrics") for o in s.get(key, [])}
    locked = {o["path"]: o for s in lock.values() for o in s.get("outs", [])}
    assert declared == set(locked), declared ^ set(locked)
    assert all(re.fullmatch(r"[0-9a-f]{32}(\.dir)?", o["md5"]) for o in locked.values())
    kinds = {"dataset": "data/processed/", "base model": "models/", "checkpoint": "results/checkpoints/",
             "metrics": "results/eval/", "table": "results/tables/", "figure": "results/figures/"}
    for kind, prefix in kinds.items():
        assert any(p.startswith(prefix) for p in locked), f"no {kind} ({prefix}) in dvc.lock"


def test_push_delete_pull_restores_identical_and_retrains_nothing(dvc_repo):
    repo, _ = dvc_repo
    before = all_bytes(repo)
    run(["dvc", "push"], repo, "dvc: dvc push")
    assert any((repo / "dvc-remote").rglob("*")), "the default remote ../dvc-remote stayed empty"
    for part in GENERATED:
        shutil.rmtree(repo / part, ignore_errors=True)
    run(["dvc", "pull"], repo, "dvc: dvc pull")
    after = all_bytes(repo)
    assert after == before, sorted(k for k in before if after.get(k) != before[k])
    proc = run(["dvc", "repro"], repo, "dvc: dvc repro after pull")
    assert ran_stages(proc.stdout + proc.stderr) == set(), proc.stdout[-2000:]
    # DVC does not keep timestamps: after a pull, `snakemake --touch` (docs/workflow.md) marks the restored files
    # current, and Snakemake then plans nothing
    run(["snakemake", "--cores", "1", "--configfile", CI_CONFIG, "--touch"], repo, "dvc: snakemake --touch after pull")
    dry = run(["snakemake", "--cores", "1", "--configfile", CI_CONFIG, "--dry-run"], repo,
              "dvc: snakemake --dry-run after pull").stdout
    planned = set(re.findall(r"^rule (\w+):", dry, flags=re.M))
    assert not planned & {"train", "pretrain_base", "evaluate"}, f"would redo after dvc pull: {planned}"
    assert all_bytes(repo) == before


def test_exp_run_reruns_only_dependent_stages(dvc_repo):
    repo, _ = dvc_repo
    lr = yaml.safe_load((repo / CI_CONFIG).read_text())["train"]["lr"]
    proc = run(["dvc", "exp", "run", "-S", f"{CI_CONFIG}:train.lr={lr * 2}"], repo,
               "dvc: dvc exp run -S train.lr", timeout=1800)
    out = proc.stdout + proc.stderr
    ran = ran_stages(out)
    assert "train" in ran and "evaluate" in ran, out[-2000:]
    assert not ran & {"data", "models"}, f"stages that do not depend on train.lr reran: {ran}"
    assert re.search(r"Stage 'data' didn't change, skipping", out)
