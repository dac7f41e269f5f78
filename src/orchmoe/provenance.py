"""run.json: what produced an artifact — resolved config, seed, code version, packages, device, md5 of in/outputs."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from orchmoe import warm
from orchmoe.io import md5_file, md5_of_tree, md5_tree, write_json

PACKAGES = ("orchmoe", "torch", "transformers", "datasets", "rouge-score", "sacrebleu", "safetensors", "snakemake", "dvc")


def git_state() -> dict:
    def run(*args):
        r = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
        return r.stdout.strip() if r.returncode == 0 else None

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict:
    info = {"device": "cuda" if torch.cuda.is_available() else "cpu", "host": platform.node()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def file_record(path) -> dict:
    """{"md5"} of a file; a directory also lists the md5 of each file in it (`files`), so `orchmoe trace --verify`
    can name the one file of a checkpoint or base model folder that changed."""
    if Path(path).is_file():
        return {"md5": md5_file(path)}
    files = md5_tree(path)
    return {"md5": md5_of_tree(files), "files": files}


def write_run_json(path, command: str, config: dict, seed: int | None, inputs: dict, outputs: dict,
                   extra: dict | None = None) -> dict:
    """inputs/outputs: {role: path}; each is recorded with its md5 (directories: md5 of their file list)."""
    record = {
        "command": command, "config": config, "seed": seed, "git": git_state(), "versions": versions(),
        "device": device_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # which cluster job made it (None outside SLURM)
        "warm": warm.in_worker(),  # run in a fork of `orchmoe warm`'s server (same code and files, no import cost)
        "inputs": {k: {"path": str(v), **file_record(v)} for k, v in inputs.items() if v is not None},
        # outputs sit beside run.json (possibly in a temporary folder renamed later): record relative paths
        "outputs": {k: {"path": os.path.relpath(v, Path(path).parent), **file_record(v)} for k, v in outputs.items()},
    }
    record.update(extra or {})
    write_json(path, record)
    return record
