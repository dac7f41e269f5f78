"""The CI-size configuration of the real workflow through `snakemake --profile slurm`, typed in the repository
root exactly as users do: every job goes through sbatch, and the artifacts equal those of a local run."""
from __future__ import annotations

import re

import pytest

from .conftest import CI_CONFIG, artifact_digests, copy_checkout, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ci_slurm(slurm, tmp_path_factory):
    repo = copy_checkout(tmp_path_factory.mktemp("ci-slurm"))
    proc = run(["snakemake", "--profile", "slurm", "--configfile", CI_CONFIG], repo,
               "slurm: CI config, snakemake --profile slurm", timeout=1800)
    return repo, proc.stdout + proc.stderr


def test_every_job_went_through_sbatch(ci_slurm):
    repo, out = ci_slurm
    assert "Using profile slurm" in out
    # Jobs Snakemake ran: "rule X:" (remote) and "localrule X:" (target rules with no command, run in place).
    remote = re.findall(r"^rule (\w+):", out, flags=re.M)
    local = set(re.findall(r"^localrule (\w+):", out, flags=re.M))
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", out)
    assert remote, out[-3000:]
    assert len(submitted) == len(remote), f"{len(remote)} jobs but {len(submitted)} sbatch submissions"
    assert len({job for job, _ in submitted}) == len(submitted)
    # Every job's SLURM log exists (the profile keeps them) and shows it ran under that SLURM job.
    for _, log in submitted:
        text = open(log).read()
        assert "Finished jobid" in text or "steps (100%) done" in text, log
    # Only the aggregation targets (no command) run on the submitting host.
    assert all(name in ("all", "default") or name.endswith("_all") for name in local), local


def test_outputs_equal_a_local_run(ci_slurm, ci_local):
    repo, _ = ci_slurm
    on_slurm, local = artifact_digests(repo), artifact_digests(ci_local)
    assert on_slurm.keys() == local.keys()
    differ = sorted(k for k in local if local[k] != on_slurm[k])
    assert not differ, f"artifacts that differ between the SLURM and the local run: {differ}"
    assert any("/checkpoints/" in k for k in local) and any(k.endswith("metrics.json") for k in local)


def test_workflow_gpu_config_reaches_the_train_jobs(tmp_path):
    """The other half of the GPU check (the throw-away GPU rule shows gpu=N -> sbatch --gpus=N): a config asking for
    a GPU per base gives every train job the resource `gpu=1` under the SLURM profile."""
    import yaml

    from .conftest import tool_env

    repo = copy_checkout(tmp_path / "repo")
    cfg = yaml.safe_load((repo / CI_CONFIG).read_text())
    for base in cfg["bases"].values():
        base.setdefault("resources", {})["gpu"] = 1
    (repo / "config" / "gpu.yaml").write_text(yaml.safe_dump(cfg))
    proc = run(["snakemake", "--profile", "slurm", "--configfile", "config/gpu.yaml", "--dry-run"], repo,
               "slurm: dry run of a GPU config", env=tool_env(ORCHMOE_SLURM_ACCOUNTING="no"))
    blocks = re.findall(r"^rule train:\n(.*?)(?:\n\n|\Z)", proc.stdout, flags=re.M | re.S)
    assert blocks, proc.stdout[-2000:]
    for block in blocks:
        assert re.search(r"resources: .*\bgpu=1\b", block), block
