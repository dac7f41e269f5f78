"""`orchmoe trace`: the chain behind one reported number, from the table cell down to source files and base model.

table cell -> metrics file -> predictions -> checkpoint (md5) -> training config + seed -> data (md5) -> sampling
manifest -> source task files (md5) -> base model (md5); each path is cross-checked against dvc.lock when it exists.
`verify` checks the chain against what each run.json recorded when it was written, file by file, and names the
first link that differs.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from orchmoe.errors import DataError
from orchmoe.io import md5_file, md5_path, read_json

WEIGHTS_NAME = "orchmoe_adapter.safetensors"  # adapters/model.py's name (imported there with torch)


def _dvc_record(lock: dict, path: str) -> str | None:
    """The dvc.lock stage and out that hold `path` (None when DVC has not recorded it)."""
    path = str(path).rstrip("/")
    for name, stage in lock.get("stages", {}).items():
        for out in stage.get("outs", []):
            p = out["path"].rstrip("/")
            if path == p or path.startswith(p + "/"):
                return f"stage {name}: out {p} md5={out.get('md5')}"
    return None


def _select(table_dir, base, run, metric, seed, suite, split) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """metrics_long.csv, its rows of the table cell (every seed) and the rows asked for (--seed)."""
    long_file = Path(table_dir) / "metrics_long.csv"
    if not long_file.is_file():
        raise DataError(f"{long_file}: not found (run the workflow's tables rule first)")
    df = pd.read_csv(long_file, keep_default_na=False)
    cell = df[(df.base.astype(str) == base) & (df.run.astype(str) == run) & (df.metric == metric)
              & (df.split.astype(str) == split)]
    if suite is not None:
        cell = cell[cell.suite.astype(str) == suite]
    sel = cell if seed is None else cell[cell.seed == seed]
    if sel.empty:
        raise DataError(f"{long_file}: no row for base={base!r} run={run!r} metric={metric!r} split={split!r}"
                        f"{'' if suite is None else f' suite={suite!r}'}{'' if seed is None else f' seed={seed}'}")
    return long_file, cell, sel


class _Differs(Exception):
    """The first link of the chain that is not what was recorded when it was written (one line)."""


def _same(table_value, source) -> bool:
    """A number as metrics_long.csv holds it (text) equals the metrics file's value."""
    if source is None:
        return str(table_value) in ("", "None")
    try:
        a, b = float(table_value), float(source)
    except (TypeError, ValueError):
        return str(table_value) == str(source)
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# Snakemake touches this empty file in every directory() output after its job, i.e. after run.json was written
SNAKEMAKE_FLAG = ".snakemake_timestamp"


def _listing(folder: Path) -> list[str]:
    """The files a run.json should have recorded: all under `folder` but Snakemake's timestamp flag."""
    if not folder.is_dir():
        return []
    files = (q for q in folder.rglob("*") if q.is_file() and q.name != SNAKEMAKE_FLAG)
    return sorted(q.relative_to(folder).as_posix() for q in files)


def _markdown_table(path: Path) -> pd.DataFrame:
    """The table of a .md file tables.py wrote (caption, blank line, | header |, |---|, | rows |)."""
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    return pd.DataFrame(rows[1:], columns=rows[0]) if rows else pd.DataFrame()


def _table_cell(table: pd.DataFrame, where: tuple[str, str, str, str], path: Path) -> str:
    suite, split, method, column = where
    if table.empty or not {"Suite", "Split", "Method", column} <= set(table.columns):
        raise _Differs(f"{path}: no column {column!r}")
    hit = table[(table.Suite == suite) & (table.Split == split) & (table.Method == method)]
    if hit.empty:
        raise _Differs(f"{path}: no row {suite} / {split} / {method}")
    return str(hit.iloc[0][column])


class _Verifier:
    """Checks links of the chain in order and stops at the first that differs; each file is hashed once."""

    def __init__(self, table_dir: Path):
        self.table_dir = table_dir
        self.long_file = table_dir / "metrics_long.csv"
        self.hashed: dict[Path, str | None] = {}
        self.cells = 0

    def md5(self, path: Path) -> str | None:
        if path not in self.hashed:
            self.hashed[path] = md5_file(path) if path.is_file() else None
        return self.hashed[path]

    def file(self, path, recorded: str, by) -> None:
        now = self.md5(Path(path))
        if now != recorded:
            raise _Differs(f"{path}: {'missing' if now is None else f'md5 {now}'}, recorded md5 {recorded} ({by})")

    def record(self, rec: dict, by, root: Path | None = None) -> None:
        """One run.json input/output: a folder file by file with none added, when its files were recorded."""
        path = Path(rec["path"]) if root is None else root / rec["path"]
        if "files" in rec:
            for name, md5 in rec["files"].items():
                if Path(name).name != SNAKEMAKE_FLAG:  # an empty marker: a copy without it is the same folder
                    self.file(path / name, md5, by)
            added = [n for n in _listing(path) if n not in rec["files"]]
            if added:
                raise _Differs(f"{path / added[0]}: not among the files recorded ({by})")
        elif path.is_dir():  # recorded by an orchmoe that kept only the folder's md5: the folder is the culprit
            now = md5_path(path)
            if now != rec["md5"]:
                raise _Differs(f"{path}: folder md5 {now}, recorded md5 {rec['md5']} ({by})")
        else:
            self.file(path, rec["md5"], by)

    def outputs(self, folder: Path, records: dict, by) -> None:
        """Every file of a run's folder against the outputs its run.json recorded (run.json itself aside)."""
        for rec in records.values():
            self.record(rec, by, root=folder)
        covered = {rec["path"] for rec in records.values()} | {"run.json"}
        for name in _listing(folder):
            if name not in covered and not any(name.startswith(c + "/") for c in covered):
                raise _Differs(f"{folder / name}: not among the outputs recorded ({by})")

    def base(self, rec: dict, by) -> None:
        """The base model by file: its folder's files as recorded, or the files a fetched folder's fetch.json lists."""
        self.record(rec, by)
        path = Path(rec["path"])
        if path.name == "fetch.json":
            for name, md5 in read_json(path).get("md5", {}).items():
                self.file(path.parent / name, md5, path)

    def run_json(self, path: Path) -> dict:
        if not path.is_file():
            raise _Differs(f"{path}: missing")
        try:
            return read_json(path)
        except DataError as e:  # an edited record is a link that differs, not a bad command line
            raise _Differs(str(e)) from None

    def cell(self, group: pd.DataFrame, metric: str) -> None:
        """metrics_long.csv rows (every seed of one table cell) equal their metrics files; main.csv and main.md
        hold the mean ± sd of those values."""
        from .tables import METRIC_LABELS, _mean_sd, aggregate, label

        values = []
        for row in group.sort_values("seed").itertuples():
            self.file(row.metrics_file, row.metrics_md5, self.long_file)
            source = read_json(row.metrics_file).get("mean", {}).get(metric)
            if not _same(row.value, source):
                raise _Differs(f"{self.long_file}: {row.suite} / {row.split} / {row.base} / {row.run} / {metric} / "
                               f"seed {row.seed} = {row.value}, but {row.metrics_file} says {source}")
            values.append(source)
        self.cells += len(values)
        if metric not in METRIC_LABELS:  # only the scores have a column in the main table
            return
        first = group.iloc[0]
        expected = _mean_sd(aggregate(group.assign(value=[float(v) for v in values])))
        where = (str(first.suite), str(first.split), label(first.run, first.method),
                 f"{first.base} {METRIC_LABELS[metric]}")
        csv_file, md_file = self.table_dir / "main.csv", self.table_dir / "main.md"
        for f in (csv_file, md_file):
            if not f.is_file():
                raise _Differs(f"{f}: missing")
        csv, md = pd.read_csv(csv_file, dtype=str, keep_default_na=False), _markdown_table(md_file)
        in_csv = _table_cell(csv, where, csv_file)
        if in_csv != expected:
            raise _Differs(f"{csv_file}: {' / '.join(where)} = {in_csv!r}, but the metrics files give {expected!r}")
        in_md = _table_cell(md, where, md_file)
        if in_md != in_csv:
            raise _Differs(f"{md_file}: {' / '.join(where)} = {in_md!r}, but {csv_file} says {in_csv!r}")
        if list(md.columns) != list(csv.columns) or md.shape != csv.shape:
            raise _Differs(f"{md_file}: {md.shape[0]} rows {list(md.columns)}, but {csv_file} has {csv.shape[0]} "
                           f"rows {list(csv.columns)}")
        for (_, a), (_, b) in zip(md.iterrows(), csv.iterrows()):  # the two renderings of one table, cell by cell
            for col in csv.columns:
                if a[col] != b[col]:
                    raise _Differs(f"{md_file}: {b.Suite} / {b.Split} / {b.Method} / {col} = {a[col]!r}, but "
                                   f"{csv_file} says {b[col]!r}")

    def chain(self, row) -> None:
        """One seed's evaluation folder, checkpoint folder, their data and base model, against their records."""
        eval_dir = Path(row.metrics_file).parent
        ev_file = eval_dir / "run.json"
        ev = self.run_json(ev_file)
        self.outputs(eval_dir, ev["outputs"], ev_file)  # metrics, predictions; few-shot: the adapted adapter/
        for role, rec in ev["inputs"].items():
            if role not in ("checkpoint", "base"):
                self.record(rec, ev_file)
        if row.checkpoint:
            ckpt = Path(row.checkpoint)
            self.file(ckpt / WEIGHTS_NAME, row.checkpoint_md5, self.long_file)
            tr_file = ckpt / "run.json"
            tr = self.run_json(tr_file)
            self.outputs(ckpt, tr["outputs"], tr_file)  # adapter config, weights, routing, logs
            used = ev["inputs"].get("checkpoint")
            if used is None or Path(used["path"]).resolve() != ckpt.resolve():
                raise _Differs(f"{ev_file}: evaluated checkpoint {used and used['path']}, but {self.long_file} "
                               f"names {ckpt}")
            self.record(used, ev_file)  # the folder as evaluated, its run.json included
            for role, rec in tr["inputs"].items():
                (self.base if role == "base" else self.record)(rec, tr_file)
        if ev["inputs"].get("base"):
            self.base(ev["inputs"]["base"], ev_file)


def verify(table_dir, base: str, run: str, metric: str = "rougeLsum", seed: int | None = None,
           suite: str | None = None, split: str = "eval") -> tuple[bool, str]:
    """Check the chain behind one number against what was recorded when each link was written: the table cell
    against its metrics files (and main.csv against main.md), then every file of the evaluation folder, checkpoint
    folder, data, init checkpoints and base model. (True, a summary) or (False, the first thing that differs)."""
    long_file, cell, sel = _select(table_dir, base, run, metric, seed, suite, split)
    v = _Verifier(Path(table_dir))
    try:
        for _, group in cell.groupby(["suite", "split"], sort=True):
            v.cell(group, metric)
        for row in sel.itertuples():
            v.chain(row)
    except _Differs as e:
        return False, f"verify: DIFFERS: {e}"
    return True, (f"verify: ok: {v.cells} metrics_long.csv value(s) equal their metrics files and the main table; "
                  f"{len(v.hashed)} files match the md5 recorded when they were written")



def trace(table_dir, base: str, run: str, metric: str = "rougeLsum", seed: int | None = None,
          lock_file="dvc.lock", suite: str | None = None, split: str = "eval") -> list[str]:
    """The chain behind one number, one line per link (`verify` checks it)."""
    long_file, _, sel = _select(table_dir, base, run, metric, seed, suite, split)
    lock = yaml.safe_load(Path(lock_file).read_text()) if Path(lock_file).is_file() else {}
    lines = []

    def dvc(path):
        rec = _dvc_record(lock, path) if lock else None
        lines.append(f"  dvc.lock     {rec or 'not recorded (run dvc repro / dvc commit)'}")

    for _, row in sel.iterrows():
        lines.append(f"table cell     {long_file}: suite {row.suite} / {row.split} / {base} / {run} / {metric} / "
                     f"seed {row.seed} = {row.value}")
        lines.append(f"metrics        {row.metrics_file} md5={row.metrics_md5}")
        eval_dir = Path(row.metrics_file).parent
        dvc(eval_dir)
        ev = read_json(eval_dir / "run.json")
        lines.append(f"predictions    {eval_dir / 'predictions.jsonl'} md5={ev['outputs']['predictions.jsonl']['md5']}")
        lines.append(f"eval command   {ev['command']}")
        lines.append(f"eval data      {ev['inputs']['data']['path']} md5={ev['inputs']['data']['md5']}")
        if "adapter" in ev["outputs"]:  # few-shot: the routing adapted to the held-out tasks (rule adapt)
            lines.append(f"few-shot       {eval_dir / 'adapter'} md5={ev['outputs']['adapter']['md5']}")
        if row.checkpoint:
            ckpt = Path(row.checkpoint)
            tr = read_json(ckpt / "run.json")
            lines.append(f"checkpoint     {ckpt / 'orchmoe_adapter.safetensors'} md5={row.checkpoint_md5}")
            dvc(ckpt)
            lines.append(f"training       seed={tr['seed']} git={tr['git']}"
                         + (f" slurm_job_id={tr['slurm_job_id']}" if tr.get("slurm_job_id") else ""))
            lines.append(f"  adapter      {json.dumps(tr['config']['adapter'], sort_keys=True)}")
            lines.append(f"  train        {json.dumps(tr['config']['train'], sort_keys=True)}")
            for role, rec in sorted(tr["inputs"].items()):
                if role.startswith("init_skill"):
                    lines.append(f"  {role:12} {rec['path']} md5={rec['md5']}")
            data = tr["inputs"]["data"]
            lines.append(f"data           {data['path']} md5={data['md5']}")
            dvc(data["path"])
            manifest = Path(data["path"]) / "manifest.json"
            if manifest.is_file():
                m = read_json(manifest)
                lines.append(f"sampling       seed={m.get('seed')} params={json.dumps(m.get('params'), sort_keys=True)}")
                for name, md5 in sorted(m.get("sources", {}).items()):
                    lines.append(f"  source       {name} md5={md5}")
        b = ev["inputs"].get("base")
        if b:
            lines.append(f"base model     {b['path']} md5={b['md5']}")
            dvc(b["path"])
        else:
            lines.append(f"base model     {ev['config']['base']} (not a local folder: hub id)")
    return lines
