"""Run Snakemake on a copy of the workflow (Snakefile, workflow/, config/, src/) so tests never lock or touch the tree."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONFIGS = ["demo", "ci", "superni-sample", "paper-orchmoe", "paper-moa", "paper-orchmoe-mini", "paper-moa-mini", "study",
           "ablation"]


def copy_workflow(dest: Path) -> Path:
    for name in ("Snakefile", "dvc.yaml"):
        shutil.copy(REPO / name, dest / name)
    # src: the rules' code params hash the package source; tests/fixtures: the MoA mini's domain files
    for name in ("workflow", "config", "src", "tests/fixtures"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shared = dest.parent / "shared"  # config/superni-sample.yaml reads ../shared/data/superni-sample
    if not shared.exists() and (REPO.parent / "shared").is_dir():
        shared.symlink_to(REPO.parent / "shared")
    return dest


def snakemake(*args, cwd, timeout=600, check=True, env=None) -> subprocess.CompletedProcess:
    env = {**(env or os.environ), "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats")) + 3
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts
