"""`orchmoe export` (a run as PEFT folders) and `orchmoe route` (which exported LoRA a router picks per prompt).

With both, any multi-LoRA server (vLLM, LoRAX, S-LoRA) serves a routed mixture as "router in front, one LoRA per
request": export every task's (MoA: domain's) LoRA once, route each prompt, send it with the chosen LoRA.
"""
from __future__ import annotations

import json
from pathlib import Path

from orchmoe.errors import ConfigError

PROMPT_ROUTED = ("orchmoe", "moa")  # methods whose router reads the prompt


def register(sub) -> None:
    p = sub.add_parser("export", help="write a training run as PEFT adapter folders (LoRA, Poly, per-task LoRAs)")
    p.add_argument("run", help="a training run folder (orchmoe_adapter.*, run.json)")
    p.add_argument("--out", required=True, help="the PEFT folder (--all-tasks: a folder of one PEFT folder per task)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--task", help="poly, mhr, orchmoe: the LoRA that task is served with")
    what.add_argument("--domain", help="moa: the domain's LoRA")
    what.add_argument("--all-tasks", action="store_true", help="one LoRA per task (moa: per domain) under --out")
    what.add_argument("--prompt", help="orchmoe, moa: the LoRA this prompt is routed to (exact for this prompt)")
    what.add_argument("--skill", type=int, help="one skill (expert) of the bank, unmixed")
    _run_args(p)
    p.add_argument("--split", default="train", help="orchmoe --task: the suite split whose prompts give the task's "
                   "routing (default train)")
    p.add_argument("--max-prompts", type=int, default=64, help="orchmoe --task: prompts per task (default 64)")
    p.add_argument("--replace", action="store_true", help="replace an earlier export of the same kind at --out "
                   "(refused if anything there was not written by orchmoe export or changed since)")
    p.add_argument("--check-prompts", type=int, default=16, help="eval prompts each folder is checked on in PEFT "
                   "against the routed run; the sidecar records the max |delta logit| (default 16; 0: no check)")
    p.set_defaults(func=_export)

    p = sub.add_parser("route", help="print the task / domain LoRA a run's router picks for prompts")
    p.add_argument("--run", required=True, help="a training run folder (orchmoe or moa)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="one prompt")
    src.add_argument("--jsonl", help="a JSONL file with a 'prompt' field per line (e.g. a suite split)")
    p.add_argument("--exports", help="a folder written by `orchmoe export --all-tasks`: pick among its LoRAs "
                   "(orchmoe: by the routing stored in each) and print the chosen folder")
    _run_args(p)
    p.add_argument("--split", default="train", help="orchmoe without --exports: split giving each task's routing")
    p.add_argument("--max-prompts", type=int, default=64)
    p.add_argument("--max-distance", type=float, default=0.0, help="orchmoe: routing distance to the picked task "
                   "beyond which a prompt is reported as served inexactly (default 0: any difference)")
    p.set_defaults(func=_route)


def _run_args(p) -> None:
    p.add_argument("--base", help="base model (default: the one recorded in the run's run.json)")
    p.add_argument("--data", help="suite folder (default: the one recorded in the run's run.json)")


# -- export ------------------------------------------------------------------------------------------------------
def _index(names: list, name: str, what: str, where) -> int:
    if name not in names:
        raise ConfigError(f"--{what} {name!r}: not a {what} of {where} (known: {', '.join(names[:8])}"
                          f"{', ...' if len(names) > 8 else ''})")
    return names.index(name)


def _task_profiles(run, split: str, max_prompts: int, only=None) -> tuple[dict, dict]:
    """OrchMoE: each task's (or each of `only`'s) mean routing over its prompts, and how far single prompts stray."""
    from orchmoe.io import md5_file

    prompts, file = run.task_prompts(split, max_prompts)
    profiles = {}
    for task, ps in prompts.items():
        if not ps or (only is not None and task not in only):
            continue
        w, _ = run.routing(ps)
        mean = {g: v.mean(0) for g, v in w.items()}
        spread = max(float((v - mean[g]).abs().max()) for g, v in w.items())
        profiles[task] = (mean, {"prompts": {"path": str(file), "n": len(ps)}, "routing_spread": round(spread, 6)})
    if not profiles:
        raise ConfigError(f"{file}: no prompts of the run's tasks")
    return profiles, {"prompts_md5": md5_file(file)}


def _plan(run, args) -> dict:
    """{folder name or '': (layers builder, merged_from metadata, the routing weights it was merged with or None)};
    '' is --out itself."""
    import torch

    from orchmoe.adapters import export as ex

    model, cfg, method = run.model, run.model.cfg, run.method
    tasks, domains = run.manifest.get("tasks", []), run.manifest.get("domains", [])
    where = run.data or run.path
    if args.skill is not None:
        return {"": (lambda: ex.skill_layers(model, args.skill), {"skill": args.skill}, None)}
    if method == "moe_lora":
        raise ConfigError("export: moe_lora routes every token, so no single LoRA equals it; export an expert "
                          "with --skill N")
    if args.prompt is not None:
        if method not in PROMPT_ROUTED:
            raise ConfigError(f"export --prompt: method {method!r} does not route by prompt (use --task or no option)")
        w, _ = run.routing([args.prompt])
        weights = {g: v[0] for g, v in w.items()}
        return {"": (lambda: ex.mixed_layers(model, weights), {"prompt": args.prompt, "routing": _lists(weights)},
                     weights)}

    def one_hot(d):  # every block router picks skill d
        return {g: torch.nn.functional.one_hot(torch.tensor(d), cfg.n_skills).float() for g in model.block_routers}

    if method == "moa":
        if args.task:
            raise ConfigError("export: moa routes by domain: use --domain or --all-tasks (one LoRA per domain)")
        chosen = [args.domain] if args.domain else domains if args.all_tasks else None
        if chosen is None:
            raise ConfigError("export: a moa run exports one LoRA per domain: pass --domain NAME or --all-tasks")
        plan = {}
        for name in chosen:
            d = _index(domains, name, "domain", where)
            plan[name if args.all_tasks else ""] = (lambda d=d: ex.mixed_layers(model, one_hot(d)),
                                                    {"domain": name, "domain_id": d, "routing": _lists(one_hot(d))},
                                                    one_hot(d))
        return plan
    if args.domain:
        raise ConfigError(f"export --domain: method {method!r} has no domains (moa only)")
    if method == "lora":
        if args.task or args.all_tasks:
            raise ConfigError("export: a lora run is one LoRA for all tasks: drop --task / --all-tasks")
        return {"": (lambda: ex.skill_layers(model, 0), {}, None)}
    chosen = [args.task] if args.task else tasks if args.all_tasks else None
    if chosen is None:
        if method in ("poly", "mhr"):
            return {"": (None, {}, None)}  # PEFT's Poly folder
        raise ConfigError(f"export: a {method} run exports one LoRA per task: pass --task, --all-tasks or --prompt")
    ids = {name: _index(tasks, name, "task", where) for name in chosen}
    plan = {}
    if method in ("poly", "mhr"):
        for name, t in ids.items():
            alloc = {n: layer.router.allocation()[t].tolist() for n, layer in model.adapted.items()}
            plan[name if args.all_tasks else ""] = (lambda t=t: ex.task_layers(model, t),
                                                    {"task": name, "task_id": t, "routing": alloc}, None)
        return plan
    profiles, shared = _task_profiles(run, args.split, args.max_prompts, only=ids)
    for name, t in ids.items():
        if name not in profiles:
            raise ConfigError(f"--task {name!r}: no prompts of it in the {args.split!r} split of {where}")
        mean, meta = profiles[name]
        plan[name if args.all_tasks else ""] = (lambda mean=mean: ex.mixed_layers(model, mean),
                                                {"task": name, "task_id": t, "routing": _lists(mean), **meta, **shared},
                                                mean)
    return plan


def _lists(weights: dict) -> dict:
    return {g: [round(float(x), 7) for x in v] for g, v in sorted(weights.items())}


EXACT = {
    "lora": "the run's LoRA itself",
    "poly": "equal outputs for inputs of this task (task id routing, evaluation-time allocation)",
    "mhr": "equal outputs for inputs of this task (task id routing, evaluation-time allocation per head)",
    "orchmoe": "equal outputs for a prompt whose routing equals 'routing'; for --task that is the mean over the "
               "task's prompts, an approximation: single prompts stray from it by up to 'routing_spread' per skill "
               "weight, and 'check' gives the measured max |delta logit| against the routed run",
    "moa": "equal outputs for prompts the router sends to this domain in every block (top-1 inference); where "
           "block routers split between domains it is not exact ('check': same_routing vs all prompts)",
    "moe_lora": "one expert, not the mixture",
}
POLY_EXACT = "PEFT's Poly with the same skills and the run's evaluation-time allocation (pass task_ids)"
MARKER = "orchmoe_exports.json"  # an --all-tasks folder's own record: which folders `orchmoe export` wrote there
EXACT_TOL = 1e-3  # float32: an exact export's logits may differ by rounding only


def _approximate(method: str, merged_from: dict) -> bool:
    """Exports that make no claim of equal outputs on the prompts they are checked on."""
    return (method == "orchmoe" and "task" in merged_from) or ("skill" in merged_from and method != "lora")


def _earlier_export(out: Path) -> tuple[str | None, str]:
    """(kind, '') for a folder that `orchmoe export` wrote and nobody changed since ("one" or "all-tasks"), else
    (None, why not)."""
    from orchmoe.adapters.export import PEFT_CONFIG, PEFT_WEIGHTS, SIDECAR
    from orchmoe.io import md5_file

    def one(folder: Path) -> str:
        try:
            meta = json.loads((folder / SIDECAR).read_text())
        except (OSError, json.JSONDecodeError):
            return f"{folder / SIDECAR} is missing or unreadable"
        if not isinstance(meta, dict) or meta.get("format") != "orchmoe-export":
            return f"{folder / SIDECAR} is not an orchmoe export's record"
        extra = sorted(p.name for p in folder.iterdir() if p.name not in (PEFT_CONFIG, PEFT_WEIGHTS, SIDECAR))
        if extra:
            return f"{folder / extra[0]} was not written by orchmoe export"
        changed = [n for n, md5 in meta.get("files", {}).items() if not (folder / n).is_file()
                   or md5_file(folder / n) != md5]
        return f"{folder / changed[0]} changed since it was exported" if changed else ""

    if out.is_symlink() or not out.is_dir():
        return None, "it is not a folder"
    if (out / MARKER).is_file():
        try:
            folders = json.loads((out / MARKER).read_text())["folders"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            return None, f"{out / MARKER} is unreadable"
        extra = sorted(p.name for p in out.iterdir() if p.name != MARKER and p.name not in folders)
        if extra:
            return None, f"{out / extra[0]} was not written by orchmoe export"
        why = next((w for w in (one(out / f) for f in folders if (out / f).exists()) if w), "")
        return ("all-tasks", "") if not why else (None, why)
    if (out / SIDECAR).is_file():
        why = one(out)
        return ("one", "") if not why else (None, why)
    return None, f"it holds no {SIDECAR} / {MARKER}"


def _check_out(out: Path, run_path: Path, all_tasks: bool, replace: bool) -> None:
    """--out may be new, or an earlier unchanged export of the same kind with --replace; never the run."""
    o, r = out.resolve(), run_path.resolve()
    if o == r or r in o.parents or o in r.parents:
        where = "is" if o == r else "is inside" if r in o.parents else "holds"
        raise ConfigError(f"--out {out} {where} the run folder {run_path}: export elsewhere (nothing written)")
    if not (out.exists() or out.is_symlink()) or (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):
        return  # new, or an empty folder: nothing there to lose
    if not replace:
        raise ConfigError(f"--out {out} exists: pass --replace to replace an earlier export there (nothing written)")
    kind, why = _earlier_export(out)
    if kind is None:
        raise ConfigError(f"--out {out} is not an earlier export to replace ({why}): nothing written")
    if (kind == "all-tasks") != all_tasks:
        raise ConfigError(f"--out {out} holds an {'--all-tasks' if kind == 'all-tasks' else 'single'} export; "
                          "--replace replaces an export of the same kind only: write this one to another folder")


def _export(args) -> None:
    import torch

    from orchmoe.adapters import export as ex
    from orchmoe.adapters.export import SIDECAR
    from orchmoe.io import atomic_path

    from .check import eval_records, measure
    from .runs import open_run, require_run

    out = Path(args.out)
    require_run(Path(args.run))
    _check_out(out, Path(args.run), args.all_tasks, args.replace)  # before the minutes a big base takes to load
    run = open_run(args.run, args.base, args.data)
    if run.method not in EXACT:
        raise ConfigError(f"export: method {run.method!r} has no export (known: {', '.join(EXACT)})")
    plan = _plan(run, args)
    if not plan:
        raise ConfigError("export: nothing to export")
    cfg, provenance = run.model.cfg, run.provenance()
    float32 = next(run.model.base_model.parameters()).dtype == torch.float32
    with torch.no_grad(), atomic_path(out) as tmp:
        folders, metas, specs = {}, {}, {}
        for sub, (build, merged_from, routing) in plan.items():
            meta = {"format": "orchmoe-export", **provenance, "merged_from": merged_from, "exact": EXACT[run.method],
                    "approximate": _approximate(run.method, merged_from)}
            folder = tmp / sub if sub else tmp
            if build is None:
                meta.update(exact=POLY_EXACT, rank=cfg.rank, max_rank=cfg.rank)
                ex.write_peft_poly(folder, run.model, meta)
            else:
                layers = build()
                ranks = [A.shape[0] for A, _ in ex.peft_layers(run.model, layers).values()]
                meta.update(rank=next(iter(layers.values()))[0].shape[0], max_rank=max(ranks), scaling=cfg.scaling)
                ex.write_peft_lora(folder, run.model, layers, cfg.scaling, meta)
            folders[sub], metas[sub] = folder, meta
            specs[sub] = {**eval_records(run, merged_from, args.check_prompts), "routing": routing,
                          "task_ids": build is None}
        checks = measure(run, folders, specs) if args.check_prompts > 0 else \
            {sub: {"measured": False, "why": "--check-prompts 0"} for sub in plan}
        for sub, meta in metas.items():
            check = meta["check"] = checks[sub]
            same = check.get("same_routing", {}).get("max_abs_delta_logit")
            if float32 and not meta["approximate"] and same is not None and same > EXACT_TOL:
                raise ConfigError(f"export {sub or out}: not exact (max |delta logit| {same} against the run on "
                                  f"{check['same_routing']['n']} prompts it claims to equal): nothing written")
            written = json.loads((folders[sub] / SIDECAR).read_text())  # with the md5s of PEFT's two files
            written["check"] = check
            (folders[sub] / SIDECAR).write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
        names = [n for n in plan if n]
        if names:
            (tmp / MARKER).write_text(json.dumps({"format": "orchmoe-exports", **provenance, "folders": names,
                                                  "max_rank": max(m["max_rank"] for m in metas.values())},
                                                 indent=2, sort_keys=True) + "\n")
    max_rank = max(m["max_rank"] for m in metas.values())
    errors = [m["check"]["max_abs_delta_logit"] for m in metas.values() if m["approximate"] and m["check"]["measured"]]
    print(f"wrote {out}" + (f": {len(names)} PEFT folders ({', '.join(names[:4])}{', ...' * (len(names) > 4)})"
                            if names else "") + f"; largest LoRA rank {max_rank} (serve with max LoRA rank >= it)"
          + (f"; approximate: max |delta logit| {max(errors)} on the checked prompts" if errors else ""))


# -- route -------------------------------------------------------------------------------------------------------
def _exports_of(exports: Path, run) -> dict:
    """{folder name: sidecar} of an --all-tasks folder, each checked to come from this run on this base."""
    from orchmoe.adapters.export import SIDECAR
    from orchmoe.adapters.model import CONFIG_NAME, WEIGHTS_NAME

    if not exports.is_dir():
        raise ConfigError(f"--exports {exports}: no such folder")
    files = sorted(exports.glob(f"*/{SIDECAR}"))
    if not files:
        raise ConfigError(f"{exports}: no exported LoRA folders (run `orchmoe export --all-tasks` first)")
    mine, key = run.provenance(), "domain" if run.method == "moa" else "task"
    found = {}
    for file in files:
        try:
            meta = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{file}: not readable JSON ({e})") from None
        if not isinstance(meta, dict) or "base_md5" not in meta or not isinstance(meta.get("run_files"), dict):
            raise ConfigError(f"{file}: records no run and base md5s (an older export?): export the run again")
        if meta["base_md5"] != mine["base_md5"]:
            raise ConfigError(f"{file}: exported on base {meta.get('base')} (md5 {meta['base_md5']}), but --run "
                              f"{run.path} is opened on base {run.base} (md5 {mine['base_md5']})")
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if meta["run_files"].get(name) != mine["run_files"].get(name):
                raise ConfigError(f"{file}: exported from run {meta.get('run')} ({name} md5 "
                                  f"{meta['run_files'].get(name)}), not from --run {run.path} (md5 "
                                  f"{mine['run_files'].get(name)}): export this run with --all-tasks")
        if key not in meta.get("merged_from", {}):
            raise ConfigError(f"{file}: not a per-{key} export of a {run.method} run (export it with --all-tasks)")
        found[file.parent.name] = meta
    return found


def _route(args) -> None:
    import sys

    import torch

    from orchmoe.io import read_jsonl

    from .runs import open_run

    run = open_run(args.run, args.base, args.data)
    if run.method not in PROMPT_ROUTED:
        raise ConfigError(f"route: method {run.method!r} has no prompt router "
                          + ("(poly/mhr take the task id with the request: serve the task's exported LoRA)"
                             if run.method in ("poly", "mhr") else "(one adapter for every prompt)"
                             if run.method == "lora" else "(moe_lora routes every token)"
                             if run.method == "moe_lora" else ""))
    if args.prompt is not None:
        rows = [{"prompt": args.prompt}]
    else:
        rows = read_jsonl(args.jsonl)
        bad = next((i for i, r in enumerate(rows) if not isinstance(r.get("prompt"), str)), None)
        if bad is not None:
            raise ConfigError(f"{args.jsonl}: line {bad + 1} has no 'prompt' string")
    exports = Path(args.exports) if args.exports else None
    found = _exports_of(exports, run) if exports is not None else {}
    weights, domains = run.routing([r["prompt"] for r in rows])
    groups = sorted(weights)
    if run.method == "orchmoe":
        if found:
            profiles = {n: {g: torch.tensor(m["merged_from"]["routing"][g]) for g in groups} for n, m in found.items()}
        else:
            profiles = {n: p for n, (p, _) in _task_profiles(run, args.split, args.max_prompts)[0].items()}
    else:  # moa: a domain's LoRA is every block routing to that domain
        all_names = run.manifest.get("domains", [])
        S = next(iter(weights.values())).shape[-1]
        names = list(found) if found else all_names
        ids = {n: (found[n]["merged_from"]["domain_id"] if found else all_names.index(n)) for n in names}
        profiles = {n: {g: torch.nn.functional.one_hot(torch.tensor(ids[n]), S).float() for g in groups}
                    for n in names}
    names = list(profiles)
    # distance: L1 between the prompt's skill weights and the LoRA's, summed over blocks (0: the LoRA is exact)
    dist = torch.stack([sum((weights[g] - profiles[n][g]).abs().sum(-1) for g in groups) for n in names], -1)
    picks = dist.argmin(-1).tolist()
    inexact = 0
    for i, row in enumerate(rows):
        if run.method == "orchmoe":
            name = names[picks[i]]
        else:  # the domain most blocks pick, as `orchmoe evaluate` counts router accuracy
            name = all_names[domains[i]] if domains[i] < len(all_names) else str(domains[i])
            if name not in profiles:
                raise ConfigError(f"{exports}: no exported LoRA for domain {name!r}")
        d = float(sum((weights[g][i] - profiles[name][g]).abs().sum() for g in groups))
        out = {**({"id": row["id"]} if "id" in row else {}), "adapter": name, "distance": round(d, 6),
               "exact": d <= 1e-6}
        if exports is not None:
            out["path"] = str(exports / name)
            check = found[name].get("check", {})
            if check.get("measured"):
                out["export_max_abs_delta_logit"] = check["max_abs_delta_logit"]
        if not out["exact"]:
            if run.method == "moa":
                votes = [int(weights[g][i].argmax()) for g in groups]
                out["blocks"] = {all_names[k] if k < len(all_names) else str(k): votes.count(k) for k in set(votes)}
            if d > args.max_distance:
                inexact += 1
                out["instead"] = f"orchmoe export {run.path} --out DIR --prompt PROMPT (exact for this prompt)"
        print(json.dumps(out, sort_keys=True))
    if inexact:
        why = ("block routers split between domains" if run.method == "moa"
               else f"their routing differs from the nearest task's by more than --max-distance {args.max_distance}")
        print(f"route: no exported adapter is exact for {inexact} of {len(rows)} prompts ({why}); export the exact "
              f"LoRA of such a prompt with `orchmoe export {run.path} --out DIR --prompt PROMPT`", file=sys.stderr)
