# The stages of the generated dvc.yaml (functions only; the rule is in dvc.smk).
import os

import yaml as _yaml


def _rel(p):
    p = str(p)
    return os.path.relpath(p) if os.path.isabs(p) else p


def _present(keys):
    """The config file's top-level keys among `keys` (DVC fails on a params key the file does not hold)."""
    with open(CONFIG_FILE) as f:
        raw = _yaml.safe_load(f) or {}
    return [k for k in keys if k in raw]


# CONFIG_FILE (common.smk): the config this run was started with. The target comes first: --configfile takes several values and would swallow a target written after it.
def snakemake_cmd(target):
    # No mtime trigger: DVC restores files (pull, checkout, exp run) with fresh timestamps, and DVC's hashes already
    # decide which phase runs; inside it Snakemake reruns jobs whose params, code or input set changed.
    return (f"snakemake {target} --cores all --configfile {CONFIG_FILE}"  # $SNAKEMAKE_PROFILE picks local or slurm
            " --rerun-triggers params code input software-env")


def code_deps(*rule_names):
    """The source files behind the rules' `code` params (common.smk), so DVC hashes exactly what Snakemake does."""
    return sorted({f for name in rule_names for f in CODE_FILES[workflow.get_rule(name).params.code]})


def base_keys(only=None, exclude=()):
    """`bases.<name>.<key>` params: each stage depends on exactly the base keys its rules read, so a change to
    target_modules marks train (as Snakemake's params trigger does) but not the pretrained base models."""
    with open(CONFIG_FILE) as f:  # the file's own keys: schema defaults are filled in BASES, DVC reads the file
        raw = (_yaml.safe_load(f) or {}).get("bases") or {}
    return [f"bases.{b}.{k}" for b, spec in raw.items() for k in spec
            if (only is None or k in only) and k not in exclude]


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
    stages = {}
    if downloaded in tasks_dirs:
        stages["download"] = {"cmd": snakemake_cmd("superni_download"),
                              "deps": ["workflow/rules/data.smk"] + code_deps("superni_download"),
                              "outs": [{downloaded: {"persist": True}}]}
    stages["data"] = {"cmd": snakemake_cmd("data_all"), "deps": data_deps,
                      "params": [{CONFIG_FILE: _present(["builtin", "suites"])}],
                      "outs": [{o: {"persist": True}} for o in data_outs]}
    if model_outs:
        stages["models"] = {"cmd": snakemake_cmd("models_all"),
                            "deps": common + ["workflow/rules/models.smk"] + code_deps(*model_rules)
                            + ([primitives_dir()] if primitives_dir() in data_outs else []),
                            "params": [{CONFIG_FILE: base_keys(exclude=("target_modules", "resources"))
                                        + (["smollm2_wheel"] if "smollm2_wheel" in config else [])}],
                            "outs": [{o: {"persist": True}} for o in model_outs]}
    stages["train"] = {
        "cmd": snakemake_cmd("train_all"),
        "deps": common + ["workflow/rules/train.smk"] + code_deps("train") + suite_out + model_outs,
        # a base's target_modules are part of every run's adapter config; its path is what a run loads
        "params": [{CONFIG_FILE: ["seeds", "methods", "train"] + base_keys(only=("target_modules", "path"))}],
        "outs": [{c: {"persist": True}} for c in CHECKPOINTS]}
    stages["evaluate"] = {
        "cmd": snakemake_cmd("evaluate_all"),
        "deps": common + ["workflow/rules/evaluate.smk"] + code_deps("evaluate", *(["adapt"] if FEWSHOT else []))
        + suite_out + model_outs + CHECKPOINTS,  # per-domain runs are evaluated on their domain's folder
        "params": [{CONFIG_FILE: ["evaluate"] + (["adapt"] if FEWSHOT else []) + base_keys(only=("path",))}],
        "outs": [{e: {"persist": True}} for e in EVALS]}
    summary = f"{TABLE_DIR}/summary.json"
    stages["tables"] = {
        "cmd": snakemake_cmd("tables_all"),
        "deps": ["workflow/rules/aggregate.smk"] + code_deps("tables", *(["params_table", "paper_tables"] if REPORT else []))
        + CHECKPOINTS + EVALS,
        "outs": [t for t in TABLES if t != summary] + PAPER_TABLES + ([PARAMS_CSV] if PARAMS_CSV else []),
        "metrics": [summary]}
    stages["figures"] = {
        "cmd": snakemake_cmd("figures_all"),
        "deps": ["workflow/rules/report.smk"] + code_deps("figures", *(["paper_figures"] if REPORT else []))
        + data_outs + CHECKPOINTS + EVALS,
        "outs": FIGURES + PAPER_FIGURES}
    if REPORT:  # the layouts are config, so a change to them reruns the report stages
        for name in ("tables", "figures"):
            stages[name]["params"] = [{CONFIG_FILE: ["report"]}]
        # `orchmoe params` reads the base architectures
        stages["tables"]["params"][0][CONFIG_FILE] += base_keys(exclude=("target_modules", "resources"))
    plots = [f"{FIGURE_DIR}/{f}.png" for f in FIGURE_NAMES]
    return {"stages": stages, "metrics": [summary], "plots": plots}


def write_dvc_yaml(path):
    header = (f"# GENERATED by `snakemake dvc_yaml --cores 1 --forcerun dvc_yaml --configfile {CONFIG_FILE}` from the "
              "Snakefile: do not edit.\n# Stages run Snakemake phase targets; see docs/workflow.md.\n")
    with open(path, "w") as f:
        f.write(header + _yaml.safe_dump(dvc_stages(), sort_keys=False, width=120))
