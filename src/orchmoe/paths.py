"""The output path grammar, in one place (stdlib only: the Snakefile loads it by path).

    results/checkpoints/<experiment>/<suite>/<base>/<run>/seed<N>/
    results/eval/<experiment>/<suite>/<base>/<run>/seed<N>/<split>/
    run = <entry>[-<field><value>...][@<domain>]      (entry: a `methods:` key, no '-' or '@'; "base" = no adapter)

workflow/rules/common.smk builds every path with these functions; the report (collect.py, tables.py) parses them
with the inverse ones, so the two cannot drift apart.
"""
from __future__ import annotations

import re
from pathlib import Path

BASE_RUN = "base"  # the frozen base model without adapters: the floor row of every table
EVAL_GLOB = "*/*/*/seed*/*/metrics.json"  # under results/eval/<experiment>/


def checkpoint_dir(experiment, suite, base, run, seed, results="results") -> str:
    return f"{results}/checkpoints/{experiment}/{suite}/{base}/{run}/seed{seed}"


def eval_dir(experiment, suite, base, run, seed, split, results="results") -> str:
    return f"{results}/eval/{experiment}/{suite}/{base}/{run}/seed{seed}/{split}"


def parse_eval_dir(path) -> dict:
    """results/eval/<experiment>/<suite>/<base>/<run>/seed<N>/<split> -> its parts (the inverse of eval_dir)."""
    p = Path(path)
    seed_dir = p.parent
    if not seed_dir.name.startswith("seed") or not seed_dir.name[4:].isdigit():
        raise ValueError(f"{path}: not an evaluation folder (.../<run>/seed<N>/<split>)")
    run_dir = seed_dir.parent
    return {"results": str(run_dir.parents[4]), "experiment": run_dir.parents[2].name,
            "suite": run_dir.parents[1].name, "base": run_dir.parent.name, "run": run_dir.name,
            "seed": int(seed_dir.name[4:]), "split": p.name}


def run_name(entry: str, point: dict | None = None, domain: str | None = None) -> str:
    """<entry>[-<field><value>...][@<domain>]: one path segment per run (sweep fields in sorted order)."""
    return entry + "".join(f"-{k}{v}" for k, v in sorted((point or {}).items())) + (f"@{domain}" if domain else "")


def parse_run(run: str) -> tuple[str, str, str | None]:
    """run name -> (entry, sweep suffix without the leading '-' or "", domain or None): the inverse of run_name."""
    name, _, domain = run.partition("@")
    entry, _, sweep = name.partition("-")
    return entry, sweep, domain or None


# owner/name as the hub spells repository ids
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_hub_id(text: str) -> bool:
    """Whether a base `path` that does not exist on disk can only be a hub id. Anything else was meant as a folder: a
    leading '.', '/' or '~', more than one '/', or a first segment that is a local folder (models/<typo>)."""
    return bool(HUB_ID.fullmatch(text)) and not Path(text.split("/")[0]).is_dir()
