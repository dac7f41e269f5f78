"""Glue: write a paper config's miniature twin = the paper config + a scale-down overlay (config/mini/*.yaml).

One source of truth: methods, sweeps, seeds (all of them), suites' structure, report layouts come from the paper
config; the overlay may only change scale. Overlay keys:
  experiment      the twin's experiment name
  rename_bases    {paper base: twin base}: renamed in `bases`, every method's `bases` list and `report`
  bases           the twins' base specs (replace the paper's, one per renamed base)
  scale           deep-merged into the paper config (dicts merge, other values replace); only the keys in
                  SCALE_KEYS may be touched, so a mini cannot drift into another experiment.
`--check` compares with the committed file instead of writing it (tests/workflow/test_minis.py).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

# What "scale" may change: data sizes and sources, step budgets and lengths, decoding batch sizes, resources.
SCALE_KEYS = {
    "suites": {"tasks_dir", "domains_config", "n_tasks", "n_train", "n_eval", "n_unseen_eval", "english_only",
               "train_split_only", "split_file", "seed"},
    "train": {"batch_size", "max_source_length", "max_target_length", "save_every", "log_every", "lr", "router_lr"},
    "evaluate": {"batch_size", "max_source_length", "max_target_length"},
}


class OverlayError(ValueError):
    pass


def _merge(base, over, path):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, f"{path}.{key}")
        else:
            base[key] = copy.deepcopy(value)


def _check_scale(scale: dict):
    for section, value in scale.items():
        if section not in SCALE_KEYS:
            raise OverlayError(f"scale.{section}: not a scale section (allowed: {sorted(SCALE_KEYS)})")
        allowed = SCALE_KEYS[section]
        items = value.values() if section == "suites" else [value]
        for item in items:
            bad = set(item) - allowed
            if bad:
                raise OverlayError(f"scale.{section}: {sorted(bad)} change more than scale (allowed: {sorted(allowed)})")


def _rename(obj, names: dict):
    if isinstance(obj, str):
        return names.get(obj, obj)
    if isinstance(obj, list):
        return [_rename(v, names) for v in obj]
    if isinstance(obj, dict):
        return {k: _rename(v, names) for k, v in obj.items()}
    return obj


def build(paper: dict, overlay: dict) -> dict:
    unknown = set(overlay) - {"experiment", "rename_bases", "bases", "scale"}
    if unknown:  # `seeds` among them: a twin runs every seed of its paper config
        raise OverlayError(f"overlay keys {sorted(unknown)}: only experiment, rename_bases, bases, scale")
    names = overlay.get("rename_bases", {})
    if set(names) != set(paper["bases"]):
        raise OverlayError(f"rename_bases must rename every paper base {sorted(paper['bases'])}, got {sorted(names)}")
    if set(overlay.get("bases", {})) != set(names.values()):
        raise OverlayError(f"bases must define exactly the twins {sorted(names.values())}")
    mini = copy.deepcopy(paper)
    mini["experiment"] = overlay["experiment"]
    mini["bases"] = copy.deepcopy(overlay["bases"])
    for entry in mini["methods"].values():
        if "bases" in entry:
            entry["bases"] = _rename(entry["bases"], names)
    if "report" in mini:
        mini["report"] = _rename(mini["report"], names)
    _check_scale(overlay.get("scale", {}))
    _merge(mini, overlay.get("scale", {}), "scale")
    return mini


def render(paper_file: str, overlay_file: str) -> str:
    paper = yaml.safe_load(Path(paper_file).read_text())
    overlay = yaml.safe_load(Path(overlay_file).read_text())
    mini = build(paper, overlay)
    header = (f"# GENERATED from {paper_file} + {overlay_file} by `python workflow/scripts/mini_config.py "
              f"--paper {paper_file} --overlay {overlay_file} --out <this file>`: do not edit.\n"
              f"# The paper config's DAG (rules, methods, sweeps, suite structure, tables and figures) with all its seeds,"
              f" at toy scale: tiny random-init twins of the bases, small data. CI runs it end to end.\n")
    return header + yaml.safe_dump(mini, sort_keys=False, width=120, allow_unicode=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--overlay", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--check", action="store_true", help="fail if --out differs from what would be written")
    a = p.parse_args(argv)
    text = render(a.paper, a.overlay)
    out = Path(a.out)
    if a.check:
        if not out.is_file() or out.read_text() != text:
            print(f"{out}: out of date with {a.paper} + {a.overlay}; regenerate it (see its header)", file=sys.stderr)
            return 1
        return 0
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OverlayError as e:
        print(f"mini_config: error: {e}", file=sys.stderr)
        sys.exit(2)
