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
    """{folder name or '': (layers builder, merged_from metadata)}; '' is --out itself."""
    import torch

    from orchmoe.adapters import export as ex

    model, cfg, method = run.model, run.model.cfg, run.method
    tasks, domains = run.manifest.get("tasks", []), run.manifest.get("domains", [])
    where = run.data or run.path
    if args.skill is not None:
        return {"": (lambda: ex.skill_layers(model, args.skill), {"skill": args.skill})}
    if method == "moe_lora":
        raise ConfigError("export: moe_lora routes every token, so no single LoRA equals it; export an expert "
                          "with --skill N")
    if args.prompt is not None:
        if method not in PROMPT_ROUTED:
            raise ConfigError(f"export --prompt: method {method!r} does not route by prompt (use --task or no option)")
        w, _ = run.routing([args.prompt])
        weights = {g: v[0] for g, v in w.items()}
        return {"": (lambda: ex.mixed_layers(model, weights), {"prompt": args.prompt, "routing": _lists(weights)})}

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
                                                    {"domain": name, "domain_id": d, "routing": _lists(one_hot(d))})
        return plan
    if args.domain:
        raise ConfigError(f"export --domain: method {method!r} has no domains (moa only)")
    if method == "lora":
        if args.task or args.all_tasks:
            raise ConfigError("export: a lora run is one LoRA for all tasks: drop --task / --all-tasks")
        return {"": (lambda: ex.skill_layers(model, 0), {})}
    chosen = [args.task] if args.task else tasks if args.all_tasks else None
    if chosen is None:
        if method in ("poly", "mhr"):
            return {"": (None, {})}  # PEFT's Poly folder
        raise ConfigError(f"export: a {method} run exports one LoRA per task: pass --task, --all-tasks or --prompt")
    ids = {name: _index(tasks, name, "task", where) for name in chosen}
    plan = {}
    if method in ("poly", "mhr"):
        for name, t in ids.items():
            alloc = {n: l.router.allocation()[t].tolist() for n, l in model.adapted.items()}
            plan[name if args.all_tasks else ""] = (lambda t=t: ex.task_layers(model, t),
                                                    {"task": name, "task_id": t, "routing": alloc})
        return plan
    profiles, shared = _task_profiles(run, args.split, args.max_prompts, only=ids)
    for name, t in ids.items():
        if name not in profiles:
            raise ConfigError(f"--task {name!r}: no prompts of it in the {args.split!r} split of {where}")
        mean, meta = profiles[name]
        plan[name if args.all_tasks else ""] = (lambda mean=mean: ex.mixed_layers(model, mean),
                                                {"task": name, "task_id": t, "routing": _lists(mean), **meta, **shared})
    return plan


def _lists(weights: dict) -> dict:
    return {g: [round(float(x), 7) for x in v] for g, v in sorted(weights.items())}


EXACT = {
    "lora": "the run's LoRA itself",
    "poly": "equal outputs for inputs of this task (task id routing, evaluation-time allocation)",
    "mhr": "equal outputs for inputs of this task (task id routing, evaluation-time allocation per head)",
    "orchmoe": "equal outputs for a prompt whose routing equals 'routing'; for --task that is the mean over the "
               "task's prompts, single prompts stray from it by up to 'routing_spread' per skill weight",
    "moa": "equal outputs for prompts the router sends to this domain in every block (top-1 inference)",
    "moe_lora": "one expert, not the mixture",
}


def _export(args) -> None:
    import torch

    from orchmoe.adapters import export as ex
    from orchmoe.io import atomic_path

    from .runs import open_run

    run = open_run(args.run, args.base, args.data)
    plan = _plan(run, args)
    cfg = run.model.cfg
    out = Path(args.out)
    with torch.no_grad(), atomic_path(out) as tmp:
        for sub, (build, merged_from) in plan.items():
            meta = {"format": "orchmoe-export", **run.provenance(), "merged_from": merged_from,
                    "exact": EXACT[run.method]}
            folder = tmp / sub if sub else tmp
            if build is None:
                meta["exact"] = "PEFT's Poly with the same skills and allocation logits (pass task_ids)"
                ex.write_peft_poly(folder, run.model, meta)
            else:
                layers = build()
                meta.update(rank=next(iter(layers.values()))[0].shape[0], scaling=cfg.scaling)
                ex.write_peft_lora(folder, run.model, layers, cfg.scaling, meta)
        if not plan:
            raise ConfigError("export: nothing to export")
    names = [n for n in plan if n]
    print(f"wrote {out}" + (f": {len(names)} PEFT LoRA folders ({', '.join(names[:4])}{', ...' * (len(names) > 4)})"
                            if names else ""))


# -- route -------------------------------------------------------------------------------------------------------
def _route(args) -> None:
    import torch

    from orchmoe.adapters.export import SIDECAR
    from orchmoe.io import read_jsonl

    from .runs import open_run

    run = open_run(args.run, args.base, args.data)
    if run.method not in PROMPT_ROUTED:
        raise ConfigError(f"route: method {run.method!r} has no prompt router "
                          + ("(poly/mhr take the task id with the request: serve the task's exported LoRA)"
                             if run.method in ("poly", "mhr") else "(one adapter for every prompt)"
                             if run.method == "lora" else "(moe_lora routes every token)"))
    if args.prompt is not None:
        rows = [{"prompt": args.prompt}]
    else:
        rows = read_jsonl(args.jsonl)
        bad = next((i for i, r in enumerate(rows) if not isinstance(r.get("prompt"), str)), None)
        if bad is not None:
            raise ConfigError(f"{args.jsonl}: line {bad + 1} has no 'prompt' string")
    exports = Path(args.exports) if args.exports else None
    names = run.manifest.get("domains" if run.method == "moa" else "tasks", [])
    if exports is not None:
        found = {p.parent.name: json.loads(p.read_text()) for p in sorted(exports.glob(f"*/{SIDECAR}"))}
        if not found:
            raise ConfigError(f"{exports}: no exported LoRA folders (run `orchmoe export --all-tasks` first)")
        names = list(found)
    weights, domains = run.routing([r["prompt"] for r in rows])
    if run.method == "orchmoe":
        if exports is not None:
            profiles = {n: {g: torch.tensor(v) for g, v in m["merged_from"]["routing"].items()} for n, m in found.items()}
        else:
            profiles = {n: p for n, (p, _) in _task_profiles(run, args.split, args.max_prompts)[0].items()}
        names = list(profiles)
        # nearest task by the L1 distance between skill weights, summed over blocks
        dist = torch.stack([sum((weights[g] - profiles[n][g]).abs().sum(-1) for g in weights) for n in names], -1)
        picks = dist.argmin(-1).tolist()
    for i, row in enumerate(rows):
        if run.method == "orchmoe":
            name, extra = names[picks[i]], {"distance": round(float(dist[i, picks[i]]), 6)}
        else:
            all_names = run.manifest.get("domains", [])
            name, extra = all_names[domains[i]] if domains[i] < len(all_names) else str(domains[i]), {}
            if exports is not None and name not in found:
                raise ConfigError(f"{exports}: no exported LoRA for domain {name!r}")
        out = {**({"id": row["id"]} if "id" in row else {}), "adapter": name, **extra}
        if exports is not None:
            out["path"] = str(exports / name)
        print(json.dumps(out, sort_keys=True))
