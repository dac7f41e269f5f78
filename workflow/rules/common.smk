# Config validation and the run table, derived once from the config and used by every rule.
# Kept deterministic and cheap: on SLURM this file is evaluated again inside every job.
import itertools
import json
import os
import re
import shlex

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

EXP = config["experiment"]
# The config file this run was started with (repository-relative): DVC params and `orchmoe params` read it.
CONFIG_FILE = (os.path.relpath(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles
               else "config/demo.yaml")
SEEDS = config["seeds"]
SUITES = config["suites"]
BASES = config["bases"]
# Keys of a method entry that shape the DAG; everything else is an AdapterConfig field passed to `orchmoe train`.
WORKFLOW_KEYS = ("per_domain", "init_from", "train", "sweep", "suites", "bases", "domains", "splits")


def _sweep_points(entry):
    """`sweep: {rank: [2, 4]}` -> [({"rank": 2}, "-rank2"), ({"rank": 4}, "-rank4")]; no sweep -> [({}, "")]."""
    sweep = entry.get("sweep") or {}
    keys = sorted(sweep)
    points = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        point = dict(zip(keys, values))
        points.append((point, "".join(f"-{k}{v}" for k, v in point.items())))
    return points or [({}, "")]


def _build_runs():
    """run name -> {suite, base, adapter, train, domain, init}: one training job per run x seed.

    A run name is one path segment: <method entry>[-<field><value>...][@<domain>]."""
    runs = {}
    for name, entry in config["methods"].items():
        for suite in entry.get("suites", list(SUITES)):
            for base in entry.get("bases", list(BASES)):
                for point, suffix in _sweep_points(entry):
                    adapter = {k: v for k, v in entry.items() if k not in WORKFLOW_KEYS}
                    adapter.update(point)
                    adapter.setdefault("target_modules", BASES[base]["target_modules"])
                    train = {**config["train"], **entry.get("train", {})}
                    domains = entry.get("domains", SUITES[suite].get("domains", []))
                    targets = [f"@{d}" for d in domains] if entry.get("per_domain") else [""]
                    for target in targets:
                        run = {"suite": suite, "base": base, "name": name + suffix + target, "entry": name,
                               "adapter": adapter, "train": train, "domain": target[1:] or None, "init": []}
                        if isinstance(entry.get("init_from"), list):  # PEFT LoRA folders, one per skill
                            run["init_dirs"] = list(entry["init_from"])
                        elif entry.get("init_from"):
                            src = config["methods"][entry["init_from"]]
                            src_domains = src.get("domains", SUITES[suite].get("domains", []))
                            run["init"] = [f"{entry['init_from']}@{d}" for d in src_domains]
                        runs[(suite, base, run["name"])] = run
    return runs


RUNS = _build_runs()


def _check_init_from():
    for name, entry in config["methods"].items():
        src = entry.get("init_from")
        if isinstance(src, str) and (src not in config["methods"] or not config["methods"][src].get("per_domain")):
            raise ValueError(f"config methods.{name}.init_from: {src!r} is not a method entry with per_domain: true")
        if entry.get("per_domain"):
            for suite in entry.get("suites", list(SUITES)):
                if not entry.get("domains", SUITES[suite].get("domains")):
                    raise ValueError(f"config methods.{name}.per_domain: suite {suite!r} lists no 'domains'")
        for key in ("suites", "bases"):
            for v in entry.get(key, []):
                if v not in config[key]:
                    raise ValueError(f"config methods.{name}.{key}: unknown {key[:-1]} {v!r}")


_check_init_from()


def suite_dir(suite):
    return f"data/processed/{EXP}/{suite}"


def primitives_dir():
    return f"data/processed/{EXP}/primitives-pretrain"


def raw_builtin():
    return f"data/raw/{EXP}/builtin"


def run_data(run):
    """Suite folder a run trains on: the whole suite, or one domain's subset for per-domain single LoRAs."""
    if run["domain"]:
        return f"data/processed/{EXP}/{run['suite']}-domains/{run['domain']}"
    return suite_dir(run["suite"])


def base_dir(base):
    spec = BASES[base]
    if spec["source"] in ("pretrain", "hub"):
        return f"models/{EXP}/{base}"
    if spec["source"] == "smollm2":
        return "models/smollm2"
    if spec["source"] == "tiny":
        return json.dumps(tiny_spec(base), sort_keys=True)
    return spec["path"]  # a model folder or hub id given by the user


def tiny_spec(base):
    """A random-init twin as the loader's JSON spec (built identically, from its seed, in every job)."""
    spec = BASES[base]
    return {"source": "tiny", **{k: spec[k] for k in ("arch", "architecture") if k in spec}, **spec.get("tiny", {})}


# Loader settings a hub base carries into every GPU job (the library's base spec keys).
LOAD_KEYS = ("dtype", "trust_remote_code")


def base_arg(base):
    """What `orchmoe train/evaluate --base` gets: the local folder, or a JSON spec when loader settings apply."""
    spec = BASES[base]
    load = {k: spec[k] for k in LOAD_KEYS if k in spec}
    if spec["source"] == "hub" and load:
        return q({"source": "local", "path": base_dir(base), **load})
    return q(tiny_spec(base)) if spec["source"] == "tiny" else base_dir(base)


def fetch_spec(base):
    """The hub base's spec for `orchmoe fetch-base` (everything but the workflow's own keys)."""
    return {k: v for k, v in BASES[base].items() if k not in ("target_modules", "resources", "pretrain")}


def base_target(base):
    """The file/folder a job waits for (nothing for a user-supplied path / hub id or a tiny twin)."""
    spec = BASES[base]
    if spec["source"] == "smollm2":
        return "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    return [] if spec["source"] in ("path", "tiny") else base_dir(base)


def ckpt(suite, base, run, seed):
    return f"results/checkpoints/{EXP}/{suite}/{base}/{run}/seed{seed}"


def eval_dir(suite, base, run, seed, split):
    return f"results/eval/{EXP}/{suite}/{base}/{run}/seed{seed}/{split}"


def splits(suite):
    return ["eval", "unseen"] if SUITES[suite].get("n_unseen", 0) > 0 else ["eval"]


def run_splits(run):
    """The suite's splits, restricted by the method entry's `splits` (evaluations no table uses are not run)."""
    want = config["methods"][run["entry"]].get("splits", splits(run["suite"]))
    return [sp for sp in splits(run["suite"]) if sp in want]


CHECKPOINTS = [ckpt(s, b, r, seed) for (s, b, r) in RUNS for seed in SEEDS]
# Per-domain single LoRAs are evaluated on their own domain's examples (MoA Tables 2 and 8: the diagonal).
EVALS = [eval_dir(s, b, r, seed, sp) for (s, b, r), run in RUNS.items() for seed in SEEDS for sp in run_splits(run)]
# "base": the frozen base model without adapters, the floor row of every table, on every suite x base x split
# some run is evaluated on.
FLOORS = sorted({(s, b, sp) for (s, b, r), run in RUNS.items() for sp in run_splits(run)})
EVALS += [eval_dir(s, b, "base", SEEDS[0], sp) for s, b, sp in FLOORS]
TABLE_DIR = f"results/tables/{EXP}"
FIGURE_DIR = f"results/figures/{EXP}"
TABLE_NAMES = ["main", "params"]
TABLES = [f"{TABLE_DIR}/{t}.{ext}" for t in TABLE_NAMES for ext in ("csv", "md", "tex")]
TABLES += [f"{TABLE_DIR}/metrics_long.csv", f"{TABLE_DIR}/summary.json"]
FIGURE_NAMES = ["training_curves", "score_vs_params", "task_clustering", "router_accuracy"]
FIGURES = [f"{FIGURE_DIR}/{f}.{ext}" for f in FIGURE_NAMES for ext in ("png", "pdf")]
FIGURES += [f"{FIGURE_DIR}/task_clustering.csv", f"{FIGURE_DIR}/task_clustering.md"]
# The papers' own layouts (config `report:`), built by `orchmoe paper-tables` / `paper-figures`.
REPORT = config.get("report", {})
PAPER_TABLES = [f"{TABLE_DIR}/paper/{t}.{ext}" for t in REPORT.get("tables", {}) for ext in ("csv", "md", "tex")]
PAPER_TABLES += [f"{TABLE_DIR}/paper/long.csv"] if REPORT.get("tables") else []  # one row per number
PAPER_FIGURES = [f"{FIGURE_DIR}/paper/{f}.{ext}" for f in REPORT.get("figures", {}) for ext in ("png", "pdf")]
PAPER_FIGURES += [f"{FIGURE_DIR}/paper/{f}.csv" for f in REPORT.get("figures", {})]
# Parameter counts of every run from the architectures alone (`orchmoe params`), the paper's values beside.
PARAMS_CSV = f"{TABLE_DIR}/paper/params.csv" if REPORT else None
BASE_TARGETS = sorted({t for b in BASES for t in [base_target(b)] if t})
HUB_BASES = [b for b, spec in BASES.items() if spec["source"] == "hub"]
DATA_TARGETS = [f"{suite_dir(s)}/manifest.json" for s in SUITES] + [
    f"{run_data(r)}/manifest.json" for r in RUNS.values() if r["domain"]
]
if any(b["source"] == "pretrain" for b in BASES.values()):  # the dvc "data" stage declares this folder as an out
    DATA_TARGETS.append(f"{primitives_dir()}/manifest.json")
DATA_TARGETS = sorted(set(DATA_TARGETS))


def q(obj):
    """Shell-quoted JSON: configs travel to the CLI as one argument."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def run_of(wildcards):
    key = (wildcards.suite, wildcards.base, wildcards.run)
    if key not in RUNS:
        raise ValueError(f"no run {key} in config {EXP}")
    return RUNS[key]


def eval_data(wildcards):
    """Suite folder an evaluation reads: the run's training data folder (a domain's share for per-domain runs)."""
    if wildcards.run == "base":
        return suite_dir(wildcards.suite)
    return run_data(run_of(wildcards))


def train_inputs(wildcards):
    run = run_of(wildcards)
    inputs = {"data": f"{run_data(run)}/manifest.json", "base": base_target(wildcards.base)}
    # MoE-LoRA (from single LoRAs) and MoA start from the per-domain single-LoRA checkpoints of the same seed
    inputs["init"] = [ckpt(wildcards.suite, wildcards.base, r, wildcards.seed) for r in run["init"]]
    inputs["init"] += run.get("init_dirs", [])  # PEFT LoRA folders given by path
    return inputs


def train_mem_mb(wildcards, attempt):
    return BASES[wildcards.base].get("resources", {}).get("train_mem_mb", 2000) * attempt


def train_runtime(wildcards, attempt):
    return BASES[wildcards.base].get("resources", {}).get("train_runtime", 30) * attempt


def train_gpu(wildcards):
    return BASES[wildcards.base].get("resources", {}).get("gpu", 0)


def eval_mem_mb(wildcards, attempt):
    return BASES[wildcards.base].get("resources", {}).get("eval_mem_mb", 2000) * attempt


def eval_runtime(wildcards, attempt):
    return BASES[wildcards.base].get("resources", {}).get("eval_runtime", 20) * attempt
