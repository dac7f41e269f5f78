"""MoA's domain data: a config table of supervised fine-tuning domains -> a suite with a domain label on every example.

Each domain names a Hugging Face dataset id or a local json/jsonl/csv/parquet file, the split, and how its fields map
onto (instruction, input, output), or how to cut a dialog into history and final answer. Loading is always
`datasets.load_dataset`; offline, a dataset that is not in the local cache fails with one error that says what to
download and where to put it. Per domain the rows are shuffled with the seed and split into n_train then n_eval
(disjoint), with the same short-data policy as the Super-NI sampler.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import yaml

from orchmoe.errors import DataError
from orchmoe.io import md5_file

from .prompts import build_prompt
from .superni import plan_split, write_suite

log = logging.getLogger(__name__)

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
DOMAIN_KEYS = {"source", "data_files", "split", "format", "fields", "dialog", "definition", "language"}


def read_domain_table(path) -> dict[str, dict]:
    """Read and check config/domains.yaml: {name: spec} in file order."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read the domain table ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e})") from None
    table = raw.get("domains") if isinstance(raw, dict) else None
    if not isinstance(table, dict) or not table:
        raise DataError(f"{path}: field 'domains' (name -> spec) is missing or empty")
    for name, spec in table.items():
        where = f"{path}: domains.{name}"
        if not isinstance(spec, dict):
            raise DataError(f"{where}: must be a mapping")
        unknown = set(spec) - DOMAIN_KEYS
        if unknown:
            raise DataError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(DOMAIN_KEYS)}")
        if not isinstance(spec.get("source"), str) or not spec["source"]:
            raise DataError(f"{where}.source: a Hugging Face dataset id or a local file is required")
        fmt = spec.setdefault("format", "fields")
        if fmt == "fields":
            fields = spec.get("fields")
            if not isinstance(fields, dict) or "output" not in fields or not ({"instruction", "input"} & set(fields)):
                raise DataError(f"{where}.fields: needs 'output' and at least one of 'instruction', 'input'")
        elif fmt == "dialog":
            dialog = spec.get("dialog")
            if not isinstance(dialog, dict) or not {"field", "user", "assistant"} <= set(dialog):
                raise DataError(f"{where}.dialog: needs 'field', 'user' and 'assistant' (turn markers)")
        else:
            raise DataError(f"{where}.format: {fmt!r} is not 'fields' or 'dialog'")
        spec.setdefault("split", "train")
        spec.setdefault("language", "en")
    return table


def load_domain(name: str, spec: dict, table_path="config/domains.yaml"):
    """-> (datasets.Dataset, {source file: md5}). Raises one DataError naming the dataset on failure."""
    import datasets

    source = spec["source"]
    local = Path(source)
    try:
        if local.suffix.lower() in LOCAL_FORMATS or local.exists():
            if not local.is_file():
                raise DataError(f"{table_path}: domains.{name}.source: local file {local} not found; "
                                f"put the domain's {local.suffix or 'json/jsonl/csv/parquet'} file there")
            builder = LOCAL_FORMATS.get(local.suffix.lower())
            if builder is None:
                raise DataError(f"{table_path}: domains.{name}.source: {local} is not .json/.jsonl/.csv/.parquet")
            ds = datasets.load_dataset(builder, data_files=str(local), split=spec["split"])
            return ds, {str(local): md5_file(local)}
        ds = datasets.load_dataset(source, data_files=spec.get("data_files"), split=spec["split"])
    except DataError:
        raise
    except Exception as e:  # hub offline / not cached / bad split: one actionable line
        target = f"data/raw/domains/{name}"
        raise DataError(
            f"{table_path}: domains.{name}: cannot load dataset {source!r}"
            f"{' files ' + repr(spec.get('data_files')) if spec.get('data_files') else ''} split {spec['split']!r} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). On a machine with internet run "
            f"`huggingface-cli download --repo-type dataset {source} --local-dir {target}`, copy {target}/ here and "
            f"set domains.{name}.source to the json/jsonl/csv/parquet file under it") from None
    sources = {Path(f["filename"]).name: md5_file(f["filename"]) for f in ds.cache_files}
    return ds, sources


def to_pair(row: dict, spec: dict, where: str) -> tuple[str, str, str] | None:
    """(definition, input, output) of one row; None when the row has an empty output."""
    if spec["format"] == "fields":
        fields = spec["fields"]
        for key, column in fields.items():
            if column not in row:
                raise DataError(f"{where}: field mapping {key}: column {column!r} not in the data "
                                f"(columns: {sorted(row)})")
        instruction = str(row[fields["instruction"]] or "") if "instruction" in fields else ""
        text = str(row[fields["input"]] or "") if "input" in fields else ""
        output = row[fields["output"]]
        if isinstance(output, list):
            output = output[0] if output else ""
        output = str(output or "").strip()
        definition = instruction.strip() or spec.get("definition", "")
        if not definition:  # no instruction column: the input is the instruction
            definition, text = text, ""
        return (definition, text, output) if output else None
    dialog = spec["dialog"]
    if dialog["field"] not in row:
        raise DataError(f"{where}: dialog.field: column {dialog['field']!r} not in the data (columns: {sorted(row)})")
    text = str(row[dialog["field"]] or "")
    cut = text.rfind(dialog["assistant"])
    if cut < 0 or dialog["user"] not in text[:cut]:
        return None
    output = text[cut + len(dialog["assistant"]):].split(dialog["user"])[0].strip()
    history = text[text.find(dialog["user"]):cut].strip()
    definition = spec.get("definition", "Continue the conversation as the assistant.")
    return (definition, history, output) if output else None


def sample_domains(table_path, out_dir, n_train: int = 1000, n_eval: int = 100, seed: int = 0,
                   domains: list[str] | None = None, strict: bool = False) -> dict:
    """Sample every (or the named) domain of the table into a suite with `domain`/`domain_id` on each example."""
    table = read_domain_table(table_path)
    for field, value in (("n_train", n_train), ("n_eval", n_eval)):
        if value < 1:
            raise DataError(f"sample size {field}={value} must be at least 1")
    names = list(table) if not domains else list(domains)
    unknown = [d for d in names if d not in table]
    if unknown:
        raise DataError(f"{table_path}: unknown domain(s) {unknown}; the table has {list(table)}")
    train, evaluation, sources, short, dropped = [], [], {}, {}, {}
    for domain_id, name in enumerate(names):
        spec = table[name]
        ds, files = load_domain(name, spec, table_path)
        sources.update({f"{name}/{k}": v for k, v in files.items()})
        where = f"{table_path}: domains.{name} ({spec['source']})"
        pairs, empty = [], 0
        for i, row in enumerate(ds):
            pair = to_pair(row, spec, where)
            if pair is None:
                empty += 1
            else:
                pairs.append((f"{name}-{i:07d}", *pair))
        if empty:
            dropped[name] = empty
            log.warning("%s: dropped %d rows with an empty output", name, empty)
        if not pairs:
            raise DataError(f"{where}: no row with a non-empty output")
        random.Random(f"{seed}:{name}").shuffle(pairs)
        k_train, k_eval = plan_split(len(pairs), n_train, n_eval, strict, where, name, short, unit="usable rows")
        rows = [{"id": i, "task": name, "task_id": domain_id, "domain": name, "domain_id": domain_id,
                 "prompt": build_prompt(d, x), "target": y, "references": [y]} for i, d, x, y in pairs]
        train += rows[:k_train]
        evaluation += rows[k_train:k_train + k_eval]
    manifest = {
        "kind": "domains", "tasks": names, "unseen_tasks": [], "domains": names, "seed": seed,
        "params": {"n_train": n_train, "n_eval": n_eval, "strict": strict},
        "languages": {n: table[n]["language"] for n in names},
        "counts": {"train": len(train), "eval": len(evaluation), "unseen": 0},
        "short_tasks": short, "dropped_empty": dropped, "sources": sources,
        "instance_ids": {"train": _ids(train), "eval": _ids(evaluation), "unseen": {}},
    }
    write_suite(out_dir, manifest, train, evaluation, [])
    return manifest


def _ids(rows):
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["task"], []).append(r["id"])
    return out
