# Config validation and the run table, derived once from the config and used by every rule.
# Kept deterministic and cheap: on SLURM this file is evaluated again inside every job.
import difflib
import importlib.util
import itertools
import json
import os
import re
import sys

import jsonschema
import yaml as _yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


REPO_DIR = Path(workflow.current_basedir).resolve().parents[1]


def _package_module(name):
    """orchmoe.<name> from this checkout's src/, loaded by path (stdlib-only modules: lineage, paths), so the
    Snakefile needs neither the installed package nor torch."""
    spec = importlib.util.spec_from_file_location("_orchmoe_" + "_".join(Path(name).parts),
                                                  REPO_DIR / "src" / "orchmoe" / f"{name}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded  # dataclasses look their module up while the file runs
    spec.loader.exec_module(loaded)
    return loaded


paths = _package_module("paths")  # the output path grammar (results/<kind>/<exp>/<suite>/<base>/<run>/seed<N>)


def config_error(message):
    """A config mistake: one line naming the config file and key, exit 2, before any job (or dvc.yaml) is planned."""
    where = os.path.relpath(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles else "config/demo.yaml"
    print(f"config error: {where}: {message}", file=sys.stderr)
    sys.exit(2)


try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as e:  # Snakemake prints the whole schema; say which key and why, in one line
    cause = e.__context__  # the jsonschema error Snakemake wrapped
    if not isinstance(cause, jsonschema.ValidationError):
        raise
    config_error(f"{'.'.join(map(str, cause.absolute_path)) or '(top level)'}: {cause.message}")

# The schema's enum of methods is the registry's (the shipped method files and $ORCHMOE_METHODS), read without torch.
METHOD_NAMES = _package_module("adapters/registry").method_names()
for _name, _entry in config["methods"].items():
    if "method" in _entry and _entry["method"] not in METHOD_NAMES:
        config_error(f"methods.{_name}.method: {_entry['method']!r} is not one of {METHOD_NAMES}")

EXP = config["experiment"]
# The config file this run was started with (repository-relative): DVC params and `orchmoe params` read it.
CONFIG_FILE = (os.path.relpath(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles
               else "config/demo.yaml")
SEEDS = config["seeds"]
SUITES = config["suites"]
BASES = config["bases"]
# Keys of a method entry that shape the DAG; everything else is an AdapterConfig field passed to `orchmoe train`.
WORKFLOW_KEYS = ("per_domain", "init_from", "train", "sweep", "suites", "bases", "domains", "splits", "oracle",
                 "per_task")


def _sweep_points(entry):
    """`sweep: {rank: [2, 4]}` -> [({"rank": 2}, "-rank2"), ({"rank": 4}, "-rank4")]; no sweep -> [({}, "")]."""
    sweep = entry.get("sweep") or {}
    keys = sorted(sweep)
    points = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        point = dict(zip(keys, values))
        points.append((point, paths.run_name("", point)))
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
                        run = {"suite": suite, "base": base, "entry": name,
                               "name": paths.run_name(name, point, target[1:] or None),
                               "adapter": adapter, "train": train, "domain": target[1:] or None, "init": [],
                               "oracle": bool(entry.get("oracle")), "per_task": bool(entry.get("per_task"))}
                        if isinstance(entry.get("init_from"), list):  # PEFT LoRA folders, one per skill
                            run["init_dirs"] = list(entry["init_from"])
                        elif entry.get("init_from"):
                            src = config["methods"][entry["init_from"]]
                            src_domains = src.get("domains", SUITES[suite].get("domains", []))
                            run["init"] = [f"{entry['init_from']}@{d}" for d in src_domains]
                        runs[(suite, base, run["name"])] = run
    return runs


def check_references():
    """Cross-references the schema cannot express, checked before the run table is built from them."""
    methods = config["methods"]
    entry_schema = _yaml.safe_load((Path(workflow.current_basedir) / "../schemas/config.schema.yaml").read_text())
    entry_schema = entry_schema["properties"]["methods"]["additionalProperties"]
    fields = set(entry_schema["properties"]) - set(WORKFLOW_KEYS)  # what a sweep may vary: AdapterConfig fields
    for name, s in SUITES.items():  # a clone not placed beside ../shared: say which key to set
        tasks = s.get("tasks_dir")
        if s["source"] == "superni" and tasks != "data/raw/superni/tasks" and not os.path.isdir(tasks):
            config_error(f"suites.{name}.tasks_dir: {tasks!r} is not a folder (set it to a folder of Super-NI "
                         "task*.json files; `snakemake data/raw/superni/tasks` downloads them there)")
    for name, entry in methods.items():
        for key in ("suites", "bases"):
            for v in entry.get(key, []):
                if v not in config[key]:
                    config_error(f"methods.{name}.{key}: unknown {key[:-1]} {v!r} (known: {', '.join(config[key])})")
        src = entry.get("init_from")
        if isinstance(src, str) and (src not in methods or not methods[src].get("per_domain")):  # a list: PEFT folders
            config_error(f"methods.{name}.init_from: {src!r} is not a method entry with per_domain: true")
        if entry.get("per_task") and (entry["method"] != "poly" or entry.get("oracle")):
            config_error(f"methods.{name}.per_task: a 'poly' entry without 'oracle' (per-task LoRAs are a fixed "
                         "one-hot poly allocation)")
        if entry.get("oracle"):
            if entry["method"] != "poly":
                config_error(f"methods.{name}.oracle: only a 'poly' entry routes with the ground-truth skill map")
            for suite in entry.get("suites", list(SUITES)):
                if SUITES[suite]["source"] != "builtin":
                    config_error(f"methods.{name}.oracle: suite {suite!r} has no ground-truth skill map (source "
                                 "'builtin' only)")
        if entry.get("per_domain"):
            for suite in entry.get("suites", list(SUITES)):
                if not entry.get("domains", SUITES[suite].get("domains")):
                    config_error(f"methods.{name}.per_domain: suite {suite!r} lists no 'domains'")
        for key, values in (entry.get("sweep") or {}).items():
            if key not in fields:
                config_error(f"methods.{name}.sweep: {key!r} is not an adapter field (one of: {', '.join(sorted(fields))})")
            for v in values:  # each sweep point must be a valid entry value
                try:
                    jsonschema.validate(v, entry_schema["properties"][key])
                except jsonschema.ValidationError as e:
                    config_error(f"methods.{name}.sweep.{key}: {e.message}")
    suite = config.get("figures", {}).get("suite")
    if suite is not None and suite not in SUITES:
        config_error(f"figures.suite: unknown suite {suite!r} (known: {', '.join(SUITES)})")


check_references()
RUNS = _build_runs()


def check_inputs():
    """What a job would otherwise find out later (or never, writing '-' cells): files the config names, and the runs,
    entries, bases and suites the report layouts name. One line naming the key and value each."""
    for name, s in SUITES.items():
        tasks = s.get("tasks_dir")
        if s["source"] == "superni" and os.path.isdir(tasks) and not list(Path(tasks).glob("task*.json")):
            config_error(f"suites.{name}.tasks_dir: {tasks!r} holds no task*.json files")
        files = {"split_file": s.get("split_file")}
        if s["source"] == "domains":
            files["domains_config"] = s.get("domains_config", "config/domains.yaml")
        for key, value in files.items():
            if value is not None and not os.path.isfile(value):
                config_error(f"suites.{name}.{key}: {value!r}: no such file")
    for name, spec in BASES.items():  # what `orchmoe train` / `fetch-base` would say after the data jobs: say it now
        path = spec.get("path")
        if spec["source"] in ("path", "hub") and not os.path.exists(os.path.expanduser(path)) \
                and not paths.is_hub_id(path):
            config_error(f"bases.{name}.path: base folder not found: {path}")
    if config.get("smollm2_wheel") and not os.path.isfile(config["smollm2_wheel"]):
        config_error(f"smollm2_wheel: {config['smollm2_wheel']!r}: no such file")
    for name, entry in config["methods"].items():
        for folder in entry.get("init_from") if isinstance(entry.get("init_from"), list) else []:
            if not os.path.isdir(folder):
                config_error(f"methods.{name}.init_from: {folder!r}: no such folder")
    run_names = {r["name"] for r in RUNS.values()} | set(config["methods"]) | {paths.BASE_RUN}
    kinds = {"run": run_names, "method entry": config["methods"], "base": BASES, "suite": SUITES}
    for kind in ("tables", "figures"):
        for item_name, item in config.get("report", {}).get(kind, {}).items():
            named = [("run", "run", item.get("run")), ("suite", "suite", item.get("suite")),
                     ("base", "base", item.get("base"))]  # (key, what it names, value)
            named += [("runs", "run", r) for r in item.get("runs", {})]
            named += [("bases", "base", b) for b in item.get("bases", [])]
            named += [("entries", "method entry", e) for e in item.get("entries", [])]
            named += [(f"lines.{line}", "method entry", e) for line, es in item.get("lines", {}).items() for e in es]
            named += [("columns", "suite", c["suite"]) for c in item.get("columns", []) if "suite" in c]
            for key, what, value in named:
                if value is not None and value not in kinds[what]:
                    close = difflib.get_close_matches(value, sorted(kinds[what]), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    config_error(f"report.{kind}.{item_name}.{key}: no {what} {value!r} in this config{hint}")


check_inputs()


# Code lineage: every rule's `code` param is the md5 of the source files its command runs (found from the import
# graph by src/orchmoe/lineage.py, loaded by path from this checkout: the code DVC hashes). Snakemake's params
# trigger reruns a job when it changes; dvc.smk lists the same files as the stage's deps, so the two tools agree.
# A process that plans several configs (the staleness test) keeps one lineage module, so its parse caches (keyed by
# file version) serve every plan.
_loaded_lineage = sys.modules.get("_orchmoe_lineage")
lineage = (_loaded_lineage if getattr(_loaded_lineage, "__file__", None) == str(REPO_DIR / "src/orchmoe/lineage.py")
           else _package_module("lineage"))
CODE_FILES = {}  # fingerprint -> the files behind it (relative to the repository), for dvc.smk


def code(*commands, scripts=()):
    """Fingerprint of `orchmoe <command>`s (and glue scripts): a rule's `code` param."""
    files = set()
    for command in commands:
        files.update(lineage.command_files(command, REPO_DIR / "src"))
    for script in scripts:
        files.update(lineage.script_files(REPO_DIR / script, REPO_DIR / "src"))
    md5 = lineage.fingerprint(files, REPO_DIR)
    CODE_FILES[md5] = sorted(os.path.relpath(f) for f in files)
    return md5


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
    """What `orchmoe train/evaluate/adapt --base` gets: the local folder, or a JSON spec when loader settings apply."""
    spec = BASES[base]
    load = {k: spec[k] for k in LOAD_KEYS if k in spec}
    if spec["source"] == "hub" and load:
        return as_json({"source": "local", "path": base_dir(base), **load})
    return as_json(tiny_spec(base)) if spec["source"] == "tiny" else base_dir(base)


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
    return paths.checkpoint_dir(EXP, suite, base, run, seed)


def eval_dir(suite, base, run, seed, split):
    return paths.eval_dir(EXP, suite, base, run, seed, split)


def splits(suite):
    return ["eval", "unseen"] if SUITES[suite].get("n_unseen", 0) > 0 else ["eval"]


def run_splits(run):
    """The suite's splits, restricted by the method entry's `splits` (evaluations no table uses are not run)."""
    want = config["methods"][run["entry"]].get("splits", splits(run["suite"]))
    return [sp for sp in splits(run["suite"]) if sp in want]


CHECKPOINTS = [ckpt(s, b, r, seed) for (s, b, r) in RUNS for seed in SEEDS]
# Per-domain single LoRAs are MoA's ingredients: evaluated on their own domain's examples (MoA Tables 2 and 8: the
# diagonal), on the seen tasks only, not on held-out ones (and not at all with evaluate.per_domain_runs: false, the
# demo). An entry's `splits` restricts the splits it is run on.
EVALS = [eval_dir(s, b, r, seed, sp) for (s, b, r), run in RUNS.items() for seed in SEEDS for sp in run_splits(run)
         if not run["domain"] or (sp == "eval" and config["evaluate"].get("per_domain_runs", True))]
# "base": the frozen base model without adapters, the floor row of every table, on every suite x base x split
# some run is evaluated on.
FLOORS = sorted({(s, b, sp) for (s, b, r), run in RUNS.items() for sp in run_splits(run)})
EVALS += [eval_dir(s, b, paths.BASE_RUN, SEEDS[0], sp) for s, b, sp in FLOORS]
# Few-shot on the held-out compositions (rule adapt) for the runs evaluated on them, where the suite samples
# few-shot examples (n_unseen_train); not for per-domain single LoRAs (MoA's ingredients)
FEWSHOT = [eval_dir(s, b, r, seed, "fewshot") for (s, b, r), run in RUNS.items() for seed in SEEDS
           if SUITES[s].get("n_unseen_train") and "unseen" in run_splits(run) and not run["domain"]]
EVALS += FEWSHOT
TABLE_DIR = f"results/tables/{EXP}"
FIGURE_DIR = f"results/figures/{EXP}"
TABLE_NAMES = ["main", "params"]
TABLES = [f"{TABLE_DIR}/{t}.{ext}" for t in TABLE_NAMES for ext in ("csv", "md", "tex")]
TABLES += [f"{TABLE_DIR}/metrics_long.csv", f"{TABLE_DIR}/summary.json"]
TABLES += [f"{TABLE_DIR}/study.{ext}" for ext in ("csv", "md")]  # seen vs held-out, CIs vs LoRA (report/study.py)
FIGURE_NAMES = ["training_curves", "score_vs_params", "task_clustering", "router_accuracy", "router_diagnostics"]
FIGURES = [f"{FIGURE_DIR}/{f}.{ext}" for f in FIGURE_NAMES for ext in ("png", "pdf")]
FIGURES += [f"{FIGURE_DIR}/{t}.{ext}" for t in ("task_clustering", "router_diagnostics") for ext in ("csv", "md")]
if SUITES[config.get("figures", {}).get("suite", list(SUITES)[0])]["source"] == "builtin":  # needs skills.json
    FIGURES += [f"{FIGURE_DIR}/{t}.{ext}" for t in ("skill_recovery", "routing_summary") for ext in ("csv", "md")]
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


# Shell safety: a config value reaches a command only through a `shell:` placeholder written `{...:q}` (Snakemake
# shell-quotes it; a list becomes one quoted word per item), so a path with a space, a quote or `$(...)` is one
# argument, never shell syntax. Params therefore hold plain values or argv lists, never pre-quoted shell text;
# tests/workflow/test_shell_quoting.py checks every placeholder of every rule.
def as_json(obj):
    """A config object as one JSON argument of the CLI (the shell line quotes it)."""
    return json.dumps(obj, sort_keys=True)


def recorded(obj):
    """A config value as a param Snakemake records (and so reruns the job when it changes): canonical JSON.
    A param function that takes `input` or `output` is never recorded, so config values must not travel only there."""
    return json.dumps(obj, sort_keys=True)


# What `orchmoe params --config` reads of each base (everything but job resources).
PARAMS_BASES = {b: {k: v for k, v in spec.items() if k != "resources"} for b, spec in BASES.items()}


def run_of(wildcards):
    key = (wildcards.suite, wildcards.base, wildcards.run)
    if key not in RUNS:
        raise ValueError(f"no run {key} in config {EXP}")
    return RUNS[key]


def eval_data(wildcards):
    """Suite folder an evaluation reads: the run's training data folder (a domain's share for per-domain runs)."""
    if wildcards.run == paths.BASE_RUN:
        return suite_dir(wildcards.suite)
    return run_data(run_of(wildcards))


def train_inputs(wildcards):
    run = run_of(wildcards)
    inputs = {"data": f"{run_data(run)}/manifest.json", "base": base_target(wildcards.base)}
    # MoE-LoRA (from single LoRAs) and MoA start from the per-domain single-LoRA checkpoints of the same seed
    inputs["init"] = [ckpt(wildcards.suite, wildcards.base, r, wildcards.seed) for r in run["init"]]
    inputs["init"] += run.get("init_dirs", [])  # PEFT LoRA folders given by path
    if run.get("oracle"):  # the oracle reference routes with the built-in suite's ground-truth skill map
        inputs["skills"] = f"{raw_builtin()}/skills.json"
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


# Input and flag functions of the data, evaluate and report rules (kept here: rule files hold only rules).
def sample_inputs(wildcards):
    s = SUITES[wildcards.suite]
    if s["source"] == "domains":
        return {"table": s.get("domains_config", "config/domains.yaml")}
    if s["source"] == "builtin":
        return {"tasks": f"{raw_builtin()}/tasks", "skills": f"{raw_builtin()}/skills.json"}
    return {"tasks": s["tasks_dir"]}


def sample_flags(wildcards, input):
    """The sampling command's options as an argv list (one item per word: the shell line quotes each)."""
    s = SUITES[wildcards.suite]
    if s["source"] == "domains":  # MoA: `orchmoe domains-sample`, domains in the config's order
        flags = ["--config", input.table, "--domains", ",".join(s["domains"]), "--n-train", s["n_train"],
                 "--n-eval", s["n_eval"], "--seed", s.get("seed", 0)]
        return flags + (["--strict"] if s.get("strict") else [])
    flags = ["--n-tasks", s.get("n_tasks", "all"), "--n-train", s["n_train"], "--n-eval", s["n_eval"],
             "--n-unseen", s.get("n_unseen", 0), "--n-unseen-eval", s.get("n_unseen_eval", s["n_eval"]),
             *(["--n-unseen-train", s["n_unseen_train"]] if s.get("n_unseen_train") else []),
             "--seed", s.get("seed", 0), "--num-pos-examples", s.get("num_pos_examples", 0)]
    flags += [f"--{k.replace('_', '-')}" for k in ("english_only", "train_split_only", "strict") if s.get(k)]
    flags += [w for k in ("prompt_format", "split_file") if k in s for w in (f"--{k.replace('_', '-')}", s[k])]
    if "skills" in input.keys():
        flags += ["--task-domains", input.skills]  # the built-in suite's domain = first skill applied
    return [str(f) for f in flags]


def eval_inputs(wildcards):
    inputs = {"data": f"{eval_data(wildcards)}/manifest.json", "base": base_target(wildcards.base)}
    if wildcards.run != paths.BASE_RUN:
        inputs["checkpoint"] = ckpt(wildcards.suite, wildcards.base, wildcards.run, wildcards.seed)
    return inputs


def figure_suite():
    return config.get("figures", {}).get("suite", list(SUITES)[0])


def paper_figure_inputs(wildcards):
    suites = sorted({f["suite"] for f in REPORT.get("figures", {}).values() if "suite" in f})
    return {"evals": EVALS, "checkpoints": CHECKPOINTS, "suites": [f"{suite_dir(s)}/manifest.json" for s in suites]}
