"""`orchmoe trace`: the chain behind one reported number, from the table cell down to source files and base model.

table cell -> metrics file -> predictions -> checkpoint (md5) -> training config + seed -> data (md5) -> sampling
manifest -> source task files (md5) -> base model (md5); each path is cross-checked against dvc.lock when it exists.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from orchmoe.errors import DataError


def _dvc_record(lock: dict, path: str) -> str | None:
    """The dvc.lock stage and out that hold `path` (None when DVC has not recorded it)."""
    path = str(path).rstrip("/")
    for name, stage in lock.get("stages", {}).items():
        for out in stage.get("outs", []):
            p = out["path"].rstrip("/")
            if path == p or path.startswith(p + "/"):
                return f"stage {name}: out {p} md5={out.get('md5')}"
    return None


def verify(recorded: list[tuple[str, str, str]]) -> list[str]:
    """Re-hash each (what, path, recorded md5) the trace printed: one line per file, DIFFERS where it changed."""
    from orchmoe.io import md5_path

    out = []
    for what, path, md5 in recorded:
        now = md5_path(path) if Path(path).exists() else None
        state = "ok" if now == md5 else ("MISSING" if now is None else f"DIFFERS (now md5={now})")
        out.append(f"verify {what:14} {path}: {state}")
    bad = sum(not line.endswith(": ok") for line in out)
    out.append(f"verify: {len(out) - bad} of {len(out)} files match their recorded md5"
               + (f", {bad} differ or are missing" if bad else ""))
    return out


def trace(table_dir, base: str, run: str, metric: str = "rougeLsum", seed: int | None = None,
          lock_file="dvc.lock", suite: str | None = None, split: str = "eval", check: bool = False) -> list[str]:
    """The chain behind one number; with `check`, every file it names is re-hashed against its recorded md5."""
    long_file = Path(table_dir) / "metrics_long.csv"
    if not long_file.is_file():
        raise DataError(f"{long_file}: not found (run the workflow's tables rule first)")
    df = pd.read_csv(long_file, keep_default_na=False)
    sel = df[(df.base == base) & (df.run == run) & (df.metric == metric) & (df.split == split)]
    if suite is not None:
        sel = sel[sel.suite == suite]
    if seed is not None:
        sel = sel[sel.seed == seed]
    if sel.empty:
        raise DataError(f"{long_file}: no row for base={base!r} run={run!r} metric={metric!r} split={split!r}"
                        f"{'' if suite is None else f' suite={suite!r}'}{'' if seed is None else f' seed={seed}'}")
    lock = yaml.safe_load(Path(lock_file).read_text()) if Path(lock_file).is_file() else {}
    lines = []
    recorded = []  # (what, path, md5 recorded when it was written): re-hashed by --verify

    def dvc(path):
        rec = _dvc_record(lock, path) if lock else None
        lines.append(f"  dvc.lock     {rec or 'not recorded (run dvc repro / dvc commit)'}")

    for _, row in sel.iterrows():
        lines.append(f"table cell     {long_file}: suite {row.suite} / {row.split} / {base} / {run} / {metric} / "
                     f"seed {row.seed} = {row.value}")
        lines.append(f"metrics        {row.metrics_file} md5={row.metrics_md5}")
        recorded.append(("metrics", row.metrics_file, row.metrics_md5))
        eval_dir = Path(row.metrics_file).parent
        dvc(eval_dir)
        ev = json.loads((eval_dir / "run.json").read_text())
        lines.append(f"predictions    {eval_dir / 'predictions.jsonl'} md5={ev['outputs']['predictions.jsonl']['md5']}")
        recorded.append(("predictions", str(eval_dir / "predictions.jsonl"), ev["outputs"]["predictions.jsonl"]["md5"]))
        lines.append(f"eval command   {ev['command']}")
        lines.append(f"eval data      {ev['inputs']['data']['path']} md5={ev['inputs']['data']['md5']}")
        recorded.append(("eval data", ev["inputs"]["data"]["path"], ev["inputs"]["data"]["md5"]))
        if row.checkpoint:
            ckpt = Path(row.checkpoint)
            tr = json.loads((ckpt / "run.json").read_text())
            lines.append(f"checkpoint     {ckpt / 'orchmoe_adapter.safetensors'} md5={row.checkpoint_md5}")
            recorded.append(("checkpoint", str(ckpt / "orchmoe_adapter.safetensors"), row.checkpoint_md5))
            dvc(ckpt)
            lines.append(f"training       seed={tr['seed']} git={tr['git']}"
                         + (f" slurm_job_id={tr['slurm_job_id']}" if tr.get("slurm_job_id") else ""))
            lines.append(f"  adapter      {json.dumps(tr['config']['adapter'], sort_keys=True)}")
            lines.append(f"  train        {json.dumps(tr['config']['train'], sort_keys=True)}")
            for role, rec in sorted(tr["inputs"].items()):
                if role.startswith("init_skill"):
                    lines.append(f"  {role:12} {rec['path']} md5={rec['md5']}")
                    recorded.append((role, rec["path"], rec["md5"]))
            data = tr["inputs"]["data"]
            lines.append(f"data           {data['path']} md5={data['md5']}")
            recorded.append(("training data", data["path"], data["md5"]))
            dvc(data["path"])
            manifest = Path(data["path"]) / "manifest.json"
            if manifest.is_file():
                m = json.loads(manifest.read_text())
                lines.append(f"sampling       seed={m.get('seed')} params={json.dumps(m.get('params'), sort_keys=True)}")
                for name, md5 in sorted(m.get("sources", {}).items()):
                    lines.append(f"  source       {name} md5={md5}")
        b = ev["inputs"].get("base")
        if b:
            lines.append(f"base model     {b['path']} md5={b['md5']}")
            recorded.append(("base model", b["path"], b["md5"]))
            dvc(b["path"])
        else:
            lines.append(f"base model     {ev['config']['base']} (not a local folder: hub id)")
    return lines + (verify(recorded) if check else [])
