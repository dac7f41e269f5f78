# The stages of the generated dvc.yaml (functions only; the rule is in dvc.smk).
import hashlib
import os

import yaml as _yaml


def _rel(p):
    p = str(p)
    return os.path.relpath(p) if os.path.isabs(p) else p


_RAW_CONFIG = []  # read once per Snakefile evaluation


def _raw_config():
    """The config file as written: DVC reads its params from the file (schema defaults are filled only in `config`)."""
    if not _RAW_CONFIG:
        with open(CONFIG_FILE) as f:
            _RAW_CONFIG.append(_yaml.safe_load(f) or {})
    return _RAW_CONFIG[0]


def _present(keys):
    """The dotted keys among `keys` that the config file holds (DVC fails on a params key the file does not hold)."""
    raw, found = _raw_config(), []
    for key in keys:
        node = raw
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is not KeyError:
            found.append(key)
    return found


# CONFIG_FILE (common.smk): the config this run was started with. The target comes first: --configfile takes several values and would swallow a target written after it.
def snakemake_cmd(target, stage):
    # No mtime trigger: DVC restores files (pull, checkout, exp run) with fresh timestamps, and DVC's hashes already
    # decide which phase runs; inside it Snakemake reruns jobs whose params, code or input set changed.
    # The trailing comment is the md5 of the stage's deps and outs lists: DVC notices a dep or out that is new, not
    # one that is gone, so a change of the lists (a seed or run dropped) changes the cmd, which DVC does notice, as
    # Snakemake's input trigger notices a changed input set.
    files = hashlib.md5(json.dumps([stage.get("deps", []), stage.get("outs", []), stage.get("metrics", [])],
                                   sort_keys=True).encode()).hexdigest()[:12]
    return (f"snakemake {target} --cores all --configfile {CONFIG_FILE}"  # $SNAKEMAKE_PROFILE picks local or slurm
            f" --rerun-triggers params code input software-env  # deps+outs {files}")


# Packages whose modules are found at run time (lineage.DISCOVERED: the method files) are folder deps: a method file
# added there changes the folder's hash, so DVC runs the stage and its dvc.yaml check names the lag (a file list
# would not notice the new file).
DISCOVERED_DIRS = [os.path.join("src", *m.split(".")) for m in lineage.DISCOVERED]


def code_deps(*rule_names):
    """The source files behind the rules' `code` params (common.smk), so DVC hashes exactly what Snakemake does."""
    files = {f for name in rule_names for f in CODE_FILES[workflow.get_rule(name).params.code]}
    return sorted({next((d for d in DISCOVERED_DIRS if os.path.dirname(f) == d), f) for f in files})


def base_keys(phase):
    """`bases.<name>.<key>` params: each stage depends on exactly the base keys its rules read, by the base's
    source (common.smk: fetch_spec, base_arg, base_dir, tiny_spec, PARAMS_BASES), so a change to target_modules
    marks train (as Snakemake's params trigger does) but not the pretrained base models, and a tiny base's seed or
    sizes mark train and evaluate, which build it."""
    keys = []
    for b, spec in (_raw_config().get("bases") or {}).items():  # the file's own keys, as DVC reads them
        source = spec.get("source")
        if phase == "models":  # pretrain_base, fetch_base, fetch_smollm2
            read = {"pretrain": ("arch", "pretrain"), "hub": tuple(fetch_spec(b))}.get(source, ())
        elif phase in ("train", "evaluate"):  # the --base argument of train / evaluate / adapt
            read = {"path": ("path",), "hub": LOAD_KEYS, "tiny": ("arch", "architecture", "tiny")}.get(source, ())
            read += ("target_modules",) if phase == "train" else ()  # every run's adapter config
        else:  # "tables": `orchmoe params` reads the whole config
            read = tuple(PARAMS_BASES[b])
        keys += [f"bases.{b}.{k}" for k in spec if k in read]
    return keys


def with_cmd(stage, target):
    """The stage with its `cmd` first (dvc.yaml reads top-down: what runs, then what it reads and writes)."""
    return {"cmd": snakemake_cmd(target, stage), **stage}


def dvc_stages():
    # what every stage's DAG is built from (common.smk loads the path grammar and the lineage code from src/)
    common = ["workflow/Snakefile", "workflow/rules/common.smk", "workflow/schemas/config.schema.yaml",
              "src/orchmoe/paths.py", "src/orchmoe/lineage.py"]
    suite_out = [suite_dir(s) for s in SUITES] + sorted({run_data(r) for r in RUNS.values() if r["domain"]})
    builtin_used = any(s["source"] == "builtin" for s in SUITES.values()) or any(
        b["source"] == "pretrain" for b in BASES.values())
    data_outs = ([raw_builtin()] if builtin_used else []) + suite_out
    data_outs += [primitives_dir()] if any(b["source"] == "pretrain" for b in BASES.values()) else []
    data_rules = ["sample_suite"] + (["builtin_suite"] if builtin_used else [])
    data_rules += ["sample_primitives"] if primitives_dir() in [_rel(o) for o in data_outs] else []
    data_rules += ["domain_suite"] if any(r["domain"] for r in RUNS.values()) else []
    data_deps = common + ["workflow/rules/data.smk"] + code_deps(*data_rules)
    # Task folders the workflow downloads itself (superni_download) come from their own stage: the data stage
    # cannot depend on a folder it creates.
    downloaded = "data/raw/superni/tasks"
    tasks_dirs = sorted({_rel(s["tasks_dir"]) for s in SUITES.values() if s["source"] == "superni"})
    data_deps += tasks_dirs
    data_deps += sorted({s.get("domains_config", "config/domains.yaml") for s in SUITES.values()
                         if s["source"] == "domains"})
    model_outs = sorted({base_dir(b) for b, s in BASES.items() if s["source"] in ("pretrain", "smollm2", "hub")})
    model_rules = [r for r, src in (("pretrain_base", "pretrain"), ("fetch_smollm2", "smollm2"), ("fetch_base", "hub"))
                   if any(s["source"] == src for s in BASES.values())]
    # Params: exactly the config keys the stage's rules read (their recorded Snakemake params), so that a key
    # marks the same phases stale for both tools (tests/workflow/test_config_staleness.py checks every key).
    stages = {}
    if downloaded in tasks_dirs:
        stages["download"] = with_cmd({"deps": ["workflow/rules/data.smk"] + code_deps("superni_download"),
                                       "outs": [{downloaded: {"persist": True}}]}, "superni_download")
    stages["data"] = with_cmd({"deps": data_deps,
                               "params": [{CONFIG_FILE: _present((["builtin"] if builtin_used else []) + ["suites"])}],
                               "outs": [{o: {"persist": True}} for o in data_outs]}, "data_all")
    if model_outs:
        pretrained = any(s["source"] == "pretrain" for s in BASES.values())  # pretrain_base's seed: builtin.seed
        stages["models"] = with_cmd({
            "deps": common + ["workflow/rules/models.smk"] + code_deps(*model_rules)
            + ([primitives_dir()] if primitives_dir() in data_outs else []),
            "params": [{CONFIG_FILE: base_keys("models") + _present(["builtin.seed"] if pretrained else [])
                        + (["smollm2_wheel"] if "smollm2_wheel" in config else [])}],
            "outs": [{o: {"persist": True}} for o in model_outs]}, "models_all")
    # what train jobs read besides data and bases (train_inputs): PEFT LoRA folders given by path, the oracle's
    # skill map
    train_extra = sorted({_rel(d) for r in RUNS.values() for d in r.get("init_dirs", [])})
    train_extra += [f"{raw_builtin()}/skills.json"] if any(r["oracle"] for r in RUNS.values()) else []
    stages["train"] = with_cmd({
        "deps": common + ["workflow/rules/train.smk"] + code_deps("train") + suite_out + model_outs + train_extra,
        "params": [{CONFIG_FILE: ["seeds", "methods", "train"] + base_keys("train")}],
        "outs": [{c: {"persist": True}} for c in CHECKPOINTS]}, "train_all")
    # the checkpoints some evaluation reads (not the per-domain runs the demo does not evaluate on their own)
    # and the data folders the evaluations read
    evals = set(EVALS)
    evaluated = [(s, b, r, seed) for (s, b, r) in RUNS for seed in SEEDS
                 if any(eval_dir(s, b, r, seed, sp) in evals for sp in ("eval", "unseen", "fewshot"))]
    eval_data = sorted({suite_dir(s) for s, b, sp in FLOORS} | {run_data(RUNS[k[:3]]) for k in evaluated})
    evaluated = [ckpt(*k) for k in evaluated]
    stages["evaluate"] = with_cmd({
        "deps": common + ["workflow/rules/evaluate.smk"] + code_deps("evaluate", *(["adapt"] if FEWSHOT else []))
        + eval_data + model_outs + evaluated,  # per-domain runs are evaluated on their domain's folder
        "params": [{CONFIG_FILE: ["evaluate"] + _present(["adapt"] if FEWSHOT else []) + base_keys("evaluate")}],
        "outs": [{e: {"persist": True}} for e in EVALS]}, "evaluate_all")
    summary = f"{TABLE_DIR}/summary.json"
    # the report layouts are config (paper_tables, paper_figures); `orchmoe params` reads the config file itself;
    # figures.suite picks the suite Figure 3 clusters
    tables_params = _present(["report.tables"] + (["experiment", "suites", "methods"] if REPORT else []))
    tables_params += base_keys("tables") if REPORT else []
    figures_params = _present(["figures", "report.figures"])
    stages["tables"] = with_cmd({
        "deps": ["workflow/rules/aggregate.smk"] + code_deps("tables", *(["params_table", "paper_tables"] if REPORT else []))
        + CHECKPOINTS + EVALS,
        **({"params": [{CONFIG_FILE: tables_params}]} if tables_params else {}),
        "outs": [t for t in TABLES if t != summary] + PAPER_TABLES + ([PARAMS_CSV] if PARAMS_CSV else []),
        "metrics": [summary]}, "tables_all")
    # what the figure rules read besides results: the clustered suite (and its skill map), the paper figures' suites
    figure_suites = {figure_suite()} | {f["suite"] for f in REPORT.get("figures", {}).values() if "suite" in f}
    figure_data = sorted(suite_dir(s) for s in figure_suites)
    figure_data += [f"{raw_builtin()}/skills.json"] if SUITES[figure_suite()]["source"] == "builtin" else []
    stages["figures"] = with_cmd({
        "deps": ["workflow/rules/report.smk"] + code_deps("figures", *(["paper_figures"] if REPORT else []))
        + figure_data + CHECKPOINTS + EVALS,
        **({"params": [{CONFIG_FILE: figures_params}]} if figures_params else {}),
        "outs": FIGURES + PAPER_FIGURES}, "figures_all")
    plots = [f"{FIGURE_DIR}/{f}.png" for f in FIGURE_NAMES]
    return {"stages": stages, "metrics": [summary], "plots": plots}


DVC_YAML_CMD = f"snakemake dvc_yaml --cores 1 --forcerun dvc_yaml --configfile {CONFIG_FILE}"


def dvc_yaml_text():
    header = (f"# GENERATED by `{DVC_YAML_CMD}` from the "
              "Snakefile: do not edit.\n# Stages run Snakemake phase targets; see docs/workflow.md.\n")
    return header + _yaml.safe_dump(dvc_stages(), sort_keys=False, width=200)  # one line per cmd


def write_dvc_yaml(path):
    with open(path, "w") as f:
        f.write(dvc_yaml_text())


def check_dvc_yaml_current():
    """Inside a DVC stage (DVC sets DVC_STAGE for its commands), stop before any job unless dvc.yaml is what this
    Snakefile generates now: its code deps follow the import graph and its params and outs follow the config, both
    of which Snakemake recomputes on every call, so a dvc.yaml that lags would let DVC vouch for stale results. Any
    such lag comes from an edit to a file or config key that some stage already lists, so DVC runs a stage, and the
    stage stops here."""
    stage = os.environ.get("DVC_STAGE")
    if not stage or not workflow.is_main_process:  # not under DVC, or a job of a running workflow
        return
    current = Path("dvc.yaml").read_text() if Path("dvc.yaml").exists() else ""
    if current != dvc_yaml_text():
        print(f"dvc.yaml is out of date for {CONFIG_FILE} (stage {stage}): run `{DVC_YAML_CMD}`, then rerun dvc",
              file=sys.stderr)
        sys.exit(2)
