"""Glue for the `domain_suite` rule: keep one domain's examples of a suite (train/eval/unseen JSONL).

The manifest keeps the full `tasks` and `domains` lists so task_id / domain_id mean the same in the subset;
`counts`, `parent` and `domain` are updated. Fails if the workflow config's domain order differs from the suite's:
MoA and MoE-LoRA (from single LoRAs) load the per-domain checkpoints as skills in that order.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchmoe.errors import DataError
from orchmoe.io import atomic_path, read_jsonl, write_json, write_jsonl


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--expect-domains", default="", help="comma-separated domain order the config assumes")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    suite = Path(a.suite)
    manifest = json.loads((suite / "manifest.json").read_text())
    domains = manifest.get("domains") or []
    expected = [d for d in a.expect_domains.split(",") if d]
    if expected and expected != domains:
        raise DataError(f"{suite}/manifest.json: domains {domains} differ from the config's suites.*.domains {expected}")
    if a.domain not in domains:
        raise DataError(f"{suite}/manifest.json: unknown domain {a.domain!r} (domains: {domains})")
    with atomic_path(a.out) as tmp:
        tmp.mkdir()
        counts = {}
        for split in ("train", "eval", "unseen"):
            src = suite / f"{split}.jsonl"
            rows = [r for r in read_jsonl(src) if r.get("domain") == a.domain] if src.is_file() else []
            if split == "train" and not rows:
                raise DataError(f"{src}: no training example of domain {a.domain!r}")
            write_jsonl(tmp / f"{split}.jsonl", rows)
            counts[split] = len(rows)
        write_json(tmp / "manifest.json", {**manifest, "counts": counts, "parent": str(suite), "domain": a.domain})
    print(f"{a.out}: {counts}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        print(f"domain_subset: error: {e}", file=sys.stderr)
        sys.exit(2)
