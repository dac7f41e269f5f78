"""Faults: a training job killed with SIGKILL mid-run resumes from its last step checkpoint and ends with the same
numbers as an uninterrupted run; an evaluation killed half-way leaves nothing that looks complete."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import copy_checkout, run, tool_env

pytestmark = pytest.mark.integration

EXP = "fault"
STEPS, SAVE_EVERY = 160, 20
CKPT = f"results/checkpoints/{EXP}/builtin/tiny-t5/lora/seed0"
WORK = f"work/{EXP}/builtin/tiny-t5/lora/seed0"
EVAL = f"results/eval/{EXP}/builtin/tiny-t5/lora/seed0/eval"


def fault_config(repo: Path) -> str:
    """The CI config cut to one method with a longer training, so a kill lands between two step checkpoints."""
    cfg = yaml.safe_load((repo / "config" / "ci.yaml").read_text())
    cfg["experiment"] = EXP
    cfg["methods"] = {"lora": cfg["methods"]["lora"]}
    cfg["train"].update(max_steps=STEPS, save_every=SAVE_EVERY)
    (repo / "config" / "fault.yaml").write_text(yaml.safe_dump(cfg))
    return "config/fault.yaml"


def snakemake(repo, target, stage, **kw):
    return run(["snakemake", target, "--cores", "2", "--configfile", "config/fault.yaml", "--rerun-incomplete"],
               repo, stage, **kw)


def start(repo, target) -> subprocess.Popen:
    # The target goes first: --configfile takes several values and would swallow it.
    return subprocess.Popen(["snakemake", target, "--cores", "2", "--configfile", "config/fault.yaml"], cwd=repo,
                            env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def kill_when(proc: subprocess.Popen, ready, timeout=600) -> None:
    """SIGKILL the whole job (Snakemake and its children, like a lost node) as soon as ready() holds."""
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail("the job finished before it could be killed: make the fault config longer")
        assert time.monotonic() < end, "timed out waiting for the moment to kill"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def unlock(repo) -> None:
    """A killed Snakemake leaves its lock behind; `--unlock` is the documented first step of the rerun."""
    run(["snakemake", "--unlock", "--cores", "1", "--configfile", "config/fault.yaml"], repo, "faults: unlock")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    repo = copy_checkout(tmp_path_factory.mktemp("fault-ref"))
    fault_config(repo)
    snakemake(repo, EVAL, "faults: uninterrupted reference run", timeout=1200)
    return repo


def test_killed_training_resumes_from_its_checkpoint(reference, tmp_path):
    repo = copy_checkout(tmp_path / "repo")
    fault_config(repo)
    snakemake(repo, f"models/{EXP}/tiny-t5", "faults: data + base before the kill", timeout=900, check=False)
    proc = start(repo, CKPT)
    started = time.monotonic()
    kill_when(proc, lambda: any((repo / WORK).glob("step-*")))
    saved = sorted(int(p.name.split("-")[1]) for p in (repo / WORK).glob("step-*"))
    assert saved and saved[-1] < STEPS
    assert not (repo / CKPT).exists(), "a killed training job must leave no checkpoint output"

    unlock(repo)
    snakemake(repo, EVAL, "faults: rerun after kill -9 of training", timeout=900)
    log = next((repo / "logs" / EXP / "train").rglob("seed0.log")).read_text()
    m = re.search(r"resuming from \S+ \(step (\d+) of (\d+)\)", log)
    assert m, f"the rerun did not resume (log tail):\n{log[-1500:]}"
    assert int(m.group(1)) == saved[-1] > 0 and int(m.group(2)) == STEPS
    for rel in (f"{CKPT}/orchmoe_adapter.safetensors", f"{EVAL}/metrics.json"):
        assert (repo / rel).read_bytes() == (reference / rel).read_bytes(), f"{rel} differs from the uninterrupted run"
    print(f"killed after {time.monotonic() - started:.1f}s at step checkpoint {saved[-1]}")


def test_killed_evaluation_leaves_nothing_complete(reference, tmp_path):
    repo = copy_checkout(tmp_path / "repo")
    fault_config(repo)
    snakemake(repo, CKPT, "faults: training before the eval kill", timeout=900)
    proc = start(repo, EVAL)

    def evaluating():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"evaluate" in cmd and any(EVAL.encode() in c for c in cmd) and b"snakemake" not in b" ".join(cmd):
                # Generation has started once the base model is loaded; give it a moment to be half-way.
                time.sleep(0.5)
                return True
        return False

    kill_when(proc, evaluating)
    out = repo / EVAL
    assert not (out / "metrics.json").exists() and not (out / "predictions.jsonl").exists()
    assert not out.exists() or not any(out.iterdir())
    stray = [p.name for p in out.parent.iterdir() if not p.name.startswith(".")] if out.parent.exists() else []
    assert stray == [], f"visible leftovers of the killed evaluation: {stray}"

    unlock(repo)
    snakemake(repo, EVAL, "faults: rerun after kill -9 of evaluation", timeout=900)
    assert (out / "metrics.json").read_bytes() == (reference / EVAL / "metrics.json").read_bytes()
