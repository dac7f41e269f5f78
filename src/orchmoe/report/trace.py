"""`orchmoe trace`: the chain behind one reported number, from the table down to source files and base model."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from orchmoe.errors import DataError


def _dvc_md5(lock: dict, path: str) -> str | None:
    """md5 that dvc.lock records for the output holding `path` (None when DVC has not run)."""
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if path == out["path"] or path.startswith(out["path"].rstrip("/") + "/"):
                return f"{out['path']} md5={out.get('md5')}"
    return None


def trace(table_dir, base: str, method: str, metric: str, seed: int | None = None, lock_file="dvc.lock") -> list[str]:
    long_file = Path(table_dir) / "metrics_long.csv"
    if not long_file.is_file():
        raise DataError(f"{long_file}: not found (run the workflow's tables rule first)")
    df = pd.read_csv(long_file)
    sel = df[(df.base == base) & (df.method == method) & (df.metric == metric)]
    if seed is not None:
        sel = sel[sel.seed == seed]
    if sel.empty:
        raise DataError(f"{long_file}: no row for base={base!r} method={method!r} metric={metric!r}")
    lock = yaml.safe_load(Path(lock_file).read_text()) if Path(lock_file).is_file() else {}
    lines = []
    for _, row in sel.iterrows():
        lines.append(f"table cell   {long_file}: {base} / {method} / {metric} / seed {row.seed} = {row.value}")
        lines.append(f"metrics      {row.metrics_file} md5={row.metrics_md5}")
        eval_dir = Path(row.metrics_file).parent
        run = json.loads((eval_dir / "run.json").read_text())
        lines.append(f"predictions  {eval_dir / 'predictions.jsonl'} md5={run['outputs']['predictions.jsonl']['md5']}")
        lines.append(f"eval command {run['command']}")
        if isinstance(row.checkpoint, str) and row.checkpoint:
            ckpt = Path(row.checkpoint)
            train_run = json.loads((ckpt / "run.json").read_text())
            lines.append(f"checkpoint   {ckpt / 'adapter_model.safetensors'} md5={row.checkpoint_md5}")
            lines.append(f"training     seed={train_run['seed']} adapter={json.dumps(train_run['config']['adapter'])}")
            lines.append(f"             train={json.dumps(train_run['config']['train'])} git={train_run['git']}")
            data = train_run["inputs"]["data"]
            lines.append(f"data         {data['path']} md5={data['md5']}")
            if "base" in train_run["inputs"]:
                b = train_run["inputs"]["base"]
                lines.append(f"base model   {b['path']} md5={b['md5']}")
            manifest = Path(data["path"]) / "manifest.json"
            if manifest.is_file():
                m = json.loads(manifest.read_text())
                lines.append(f"sampling     seed={m['seed']} params={json.dumps(m['params'])}")
                for name, md5 in sorted(m["sources"].items()):
                    lines.append(f"source       {name}.json md5={md5}")
        for label, path in (("dvc (metrics)", str(eval_dir)), ("dvc (checkpoint)", str(row.checkpoint))):
            rec = _dvc_md5(lock, path) if lock else None
            if rec:
                lines.append(f"{label:12} {rec}")
    return lines
