"""The SLURM profile users get, through the real executor plugin on the real local cluster, on a throw-away
workflow (seconds of work per job): every job is a SLURM job, a failing job is retried then reported with its log,
a GPU rule's sbatch call carries the GPU request, and `--profile slurm` resolves to the repository's profile."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import REPO, copy_checkout, run, tool_env

pytestmark = pytest.mark.integration

PROFILE = REPO / "workflow" / "profiles" / "slurm"

TOY = """
rule all:
    input: "joined.txt", "failed.txt"

rule left:
    output: "left.txt"
    resources: mem_mb=200, runtime=5
    shell: "echo left $SLURM_JOB_ID > {output}"

rule right:
    output: "right.txt"
    resources: mem_mb=200, runtime=5
    shell: "echo right $SLURM_JOB_ID > {output}"

rule join:
    input: "left.txt", "right.txt"
    output: "joined.txt"
    resources: mem_mb=200, runtime=5
    shell: "cat {input} > {output}; echo join $SLURM_JOB_ID >> {output}"

rule broken:
    output: "failed.txt"
    log: "logs/broken.log"
    resources: mem_mb=200, runtime=5
    shell: "echo $SLURM_JOB_ID >> attempts.txt; echo 'deliberate failure' > {log}; exit 3"
"""

GPU = """
rule train:
    output: "trained.txt"
    resources: gpu=1, mem_mb=200, runtime=5
    shell: "echo {resources.gpu} > {output}"
"""


def toy_dir(tmp: Path, snakefile: str) -> Path:
    (tmp / "Snakefile").write_text(snakefile)
    os.symlink(PROFILE, tmp / "slurm")  # how the repository root offers it: ./slurm -> workflow/profiles/slurm
    return tmp


@pytest.fixture(scope="module")
def toy_run(slurm, tmp_path_factory):
    d = toy_dir(tmp_path_factory.mktemp("toy"), TOY)
    proc = run(["snakemake", "--profile", "slurm", "--keep-going"], d, "slurm: throw-away 4-rule workflow", check=False)
    return d, proc, proc.stdout + proc.stderr


def slurm_log_ids(d: Path, rule: str) -> set[str]:
    return {p.stem for p in (d / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log")}


def test_every_job_is_a_slurm_job(toy_run):
    d, proc, out = toy_run
    assert "Using profile slurm" in out
    for rule, path in (("left", "left.txt"), ("right", "right.txt")):
        word, job_id = (d / path).read_text().split()
        assert job_id.isdigit(), f"{path}: rule {rule} did not run inside a SLURM job ($SLURM_JOB_ID empty)"
        # The plugin's per-job log is named by the SLURM job id that ran the rule.
        assert slurm_log_ids(d, rule) == {job_id}
    lines = (d / "joined.txt").read_text().split("\n")
    join_id = lines[2].split()[1]
    assert slurm_log_ids(d, "join") == {join_id}
    ids = {(d / "left.txt").read_text().split()[1], (d / "right.txt").read_text().split()[1], join_id}
    assert len(ids) == 3, "each rule must be its own SLURM job"


def test_failing_job_is_retried_then_reported_with_its_log(toy_run):
    d, proc, out = toy_run
    assert proc.returncode != 0, "a workflow with a failing job must fail"
    attempts = (d / "attempts.txt").read_text().split()
    assert len(attempts) == 2 and len(set(attempts)) == 2, f"expected 1 try + 1 retry (profile retries: 1): {attempts}"
    assert "Trying to restart job" in out
    # The final report names the rule's own log and the SLURM log of the last attempt, which exists.
    last = attempts[-1]
    m = re.findall(r"log: logs/broken\.log, (\S+/slurm_logs/rule_broken/(\d+)\.log)", out)
    assert m and m[-1][1] == last, out[-3000:]
    assert Path(m[-1][0]).is_file()
    assert "deliberate failure" in (d / "logs" / "broken.log").read_text()
    assert not (d / "failed.txt").exists()


def test_gpu_rule_submission_requests_gpus(slurm, tmp_path):
    """This cluster has no GPUs, so sbatch refuses the job, but its call shows what a GPU cluster would receive."""
    d = toy_dir(tmp_path, GPU)
    for extra, expected in (({}, "--gpus=1"), ({"ORCHMOE_SLURM_GPU_MODEL": "a100"}, "--gpus=a100:1")):
        proc = run(["snakemake", "--profile", "slurm", "--verbose", "--retries", "0"], d,
                   f"slurm: GPU submission {expected}", env=tool_env(**extra), check=False)
        out = proc.stdout + proc.stderr
        calls = [line for line in out.splitlines() if line.startswith("sbatch call:")]
        assert calls, out[-3000:]
        assert expected in calls[0].split() and "rule_train" in calls[0], calls[0]
        assert "--gres" not in calls[0]


def test_profile_name_resolves_from_repository_root(tmp_path):
    """`snakemake --profile slurm` typed in the repository root finds ./slurm (-> workflow/profiles/slurm), and the
    profile's settings are what the run uses; elsewhere the name is not found (so no hidden user-level profile)."""
    repo = copy_checkout(tmp_path / "repo")
    assert (repo / "slurm").is_symlink() and (repo / "slurm" / "profile.yaml").is_file()
    env = tool_env(ORCHMOE_SLURM_ACCOUNTING="no", HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    proc = run(["snakemake", "--profile", "slurm", "--dry-run", "--quiet", "rules"], repo, "slurm: profile lookup",
               env=env, check=False)
    out = proc.stdout + proc.stderr
    assert "Using profile slurm" in out, out[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "Snakefile").write_text("rule a:\n    output: 'a'\n    shell: 'touch a'\n")
    proc = run(["snakemake", "--profile", "slurm", "--dry-run"], elsewhere, "slurm: profile lookup elsewhere",
               env=env, check=False)
    assert proc.returncode != 0
    assert "profile" in (proc.stdout + proc.stderr).lower()
