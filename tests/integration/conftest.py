"""Fixtures for the real-infrastructure suite (SLURM, DVC, faults): `make integration` runs it after
`.ci/slurm/up.sh`. Every external command goes through `run()`, which records its wall time; the per-stage
timings are printed at the end of the session."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: snakemake, dvc, orchmoe
TIMINGS: list[tuple[str, float]] = []


def tool_env(**extra) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, cwd, stage: str, env=None, timeout=900, check=True) -> subprocess.CompletedProcess:
    """Run a command, record its wall time under `stage`, and fail with its output tail if it fails."""
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout,
                          shell=isinstance(cmd, str))
    TIMINGS.append((stage, time.monotonic() - start))
    if check and proc.returncode != 0:
        pytest.fail(f"{stage}: `{cmd}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
                    f"--- stderr\n{proc.stderr[-6000:]}")
    return proc


def slurm_ready() -> str | None:
    """None if a SLURM node answers and is usable, else why not."""
    if not shutil.which("sinfo"):
        return "sinfo not found (run .ci/slurm/up.sh)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s in ("idle", "mix", "alloc") for s in states):
        return f"no usable SLURM node (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    return None


@pytest.fixture(scope="session")
def slurm():
    """A running SLURM cluster. Skips where there is none, unless ORCHMOE_REQUIRE_SLURM=1 (set by `make integration`)."""
    why = slurm_ready()
    if why:
        if os.environ.get("ORCHMOE_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM is required here but {why}")
        pytest.skip(why)


def copy_checkout(dest: Path) -> Path:
    """A fresh checkout of the working tree: the files git tracks plus untracked, not ignored ones (so uncommitted
    work is tested too), none of the generated data/results/.snakemake/.dvc cache."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for rel in filter(None, out.split("\0")):
        src = REPO / rel
        if src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(src), dest / rel)
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.section("integration stage timings (wall seconds)")
    for stage, seconds in TIMINGS:
        terminalreporter.write_line(f"{seconds:8.1f}  {stage}")
    terminalreporter.write_line(f"{sum(s for _, s in TIMINGS):8.1f}  total of the stages above")


# ---------------------------------------------------------------- the CI-size workflow, run once locally as reference
CI_CONFIG = "config/ci.yaml"
VOLATILE = {"run.json"}  # provenance: wall times, host, SLURM job id


def artifact_digests(root: Path, parts=("data/processed", "models", "results")) -> dict[str, str]:
    """md5 of every artifact under `parts`, except what legitimately differs between two identical runs: run.json
    (times, host, job id), PDF/HTML (creation dates), the wall-clock column of training logs (*_log.csv)."""
    import csv
    import hashlib
    import io

    out = {}
    for part in parts:
        for p in sorted((root / part).rglob("*")):
            if not p.is_file() or p.name in VOLATILE or p.suffix in (".pdf", ".html") or "/." in str(p):
                continue
            data = p.read_bytes()
            if p.name.endswith("_log.csv"):  # train_log.csv, pretrain_log.csv
                rows = list(csv.DictReader(io.StringIO(data.decode())))
                data = repr([{k: v for k, v in r.items() if k != "seconds"} for r in rows]).encode()
            out[str(p.relative_to(root))] = hashlib.md5(data).hexdigest()
    return out


@pytest.fixture(scope="session")
def ci_local(tmp_path_factory) -> Path:
    """A fresh checkout with the CI-size config run to the end by `snakemake --cores 2` (the reference), under
    `orchmoe warm`: the SLURM run it is compared with runs every job cold, so equal outputs also show warm == cold."""
    repo = copy_checkout(tmp_path_factory.mktemp("ci-local"))
    run(["orchmoe", "warm", "--", "snakemake", "--cores", "2", "--configfile", CI_CONFIG], repo,
        "local: CI config, snakemake --cores 2 (warm)", timeout=1800)
    return repo
