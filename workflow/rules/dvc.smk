# dvc.yaml is GENERATED from this DAG (one definition of the pipeline): `snakemake dvc_yaml --forcerun dvc_yaml`
# (add --configfile for another experiment). One DVC stage per phase, each calling the phase's Snakemake target;
# every dataset, base model, checkpoint, evaluation, table and figure is its own out, so dvc.lock records an md5
# for each. Data, model, training and evaluation outs persist: DVC would otherwise delete them before the stage
# runs, and Snakemake would redo every job instead of only those whose inputs or params changed. tests/workflow/test_dvc_sync.py fails when dvc.yaml drifts from this.
import os

import yaml as _yaml


def _rel(p):
    p = str(p)
    return os.path.relpath(p) if os.path.isabs(p) else p


# The target comes first: --configfile takes several values and would swallow a target written after it.
def _present(keys):
    """The config file's top-level keys among `keys` (DVC fails on a params key the file does not hold)."""
    with open(CONFIG_FILE) as f:
        raw = _yaml.safe_load(f) or {}
    return [k for k in keys if k in raw]


def snakemake_cmd(target):
    # No mtime trigger: DVC restores files (pull, checkout, exp run) with fresh timestamps, and DVC's hashes already
    # decide which phase runs; inside it Snakemake reruns jobs whose params, code or input set changed.
    return (f"snakemake {target} --cores all --configfile {CONFIG_FILE}"  # $SNAKEMAKE_PROFILE picks local or slurm
            " --rerun-triggers params code input software-env")


def dvc_stages():
    common = ["workflow/Snakefile", "workflow/rules/common.smk", "workflow/schemas/config.schema.yaml"]
    suite_out = [suite_dir(s) for s in SUITES] + sorted({run_data(r) for r in RUNS.values() if r["domain"]})
    builtin_used = any(s["source"] == "builtin" for s in SUITES.values()) or any(
        b["source"] == "pretrain" for b in BASES.values())
    data_outs = ([raw_builtin()] if builtin_used else []) + suite_out
    data_outs += [primitives_dir()] if any(b["source"] == "pretrain" for b in BASES.values()) else []
    data_deps = common + ["workflow/rules/data.smk", "workflow/scripts/domain_subset.py", "src/orchmoe/data"]
    # Task folders the workflow downloads itself (superni_download) come from their own stage: the data stage
    # cannot depend on a folder it creates.
    downloaded = "data/raw/superni/tasks"
    tasks_dirs = sorted({_rel(s["tasks_dir"]) for s in SUITES.values() if s["source"] == "superni"})
    data_deps += tasks_dirs
    data_deps += sorted({s.get("domains_config", "config/domains.yaml") for s in SUITES.values()
                         if s["source"] == "domains"})
    model_outs = sorted({base_dir(b) for b, s in BASES.items() if s["source"] in ("pretrain", "smollm2", "hub")})
    stages = {}
    if downloaded in tasks_dirs:
        stages["download"] = {"cmd": snakemake_cmd("superni_download"), "deps": ["workflow/rules/data.smk"],
                              "outs": [{downloaded: {"persist": True}}]}
    stages["data"] = {"cmd": snakemake_cmd("data_all"), "deps": data_deps,
                      "params": [{CONFIG_FILE: _present(["builtin", "suites"])}],
                      "outs": [{o: {"persist": True}} for o in data_outs]}
    if model_outs:
        stages["models"] = {"cmd": snakemake_cmd("models_all"),
                            "deps": common + ["workflow/rules/models.smk", "src/orchmoe/models"]
                            + ([primitives_dir()] if primitives_dir() in data_outs else []),
                            "params": [{CONFIG_FILE: ["bases"]}], "outs": [{o: {"persist": True}} for o in model_outs]}
    stages["train"] = {
        "cmd": snakemake_cmd("train_all"),
        "deps": common + ["workflow/rules/train.smk", "src/orchmoe/adapters", "src/orchmoe/training",
                          "src/orchmoe/models"] + suite_out + model_outs,
        "params": [{CONFIG_FILE: ["seeds", "methods", "train"]}],
        "outs": [{c: {"persist": True}} for c in CHECKPOINTS]}
    stages["evaluate"] = {
        "cmd": snakemake_cmd("evaluate_all"),
        "deps": common + ["workflow/rules/evaluate.smk", "src/orchmoe/training", "src/orchmoe/metrics"]
        + suite_out + model_outs + CHECKPOINTS,
        "params": [{CONFIG_FILE: ["evaluate"]}],
        "outs": [{e: {"persist": True}} for e in EVALS]}
    summary = f"{TABLE_DIR}/summary.json"
    stages["tables"] = {
        "cmd": snakemake_cmd("tables_all"),
        "deps": ["workflow/rules/aggregate.smk", "src/orchmoe/report"] + CHECKPOINTS + EVALS,
        "outs": [t for t in TABLES if t != summary] + PAPER_TABLES + ([PARAMS_CSV] if PARAMS_CSV else []),
        "metrics": [summary]}
    stages["figures"] = {
        "cmd": snakemake_cmd("figures_all"),
        "deps": ["workflow/rules/report.smk", "src/orchmoe/report"] + data_outs + CHECKPOINTS + EVALS,
        "outs": FIGURES + PAPER_FIGURES}
    if REPORT:  # the layouts are config, so a change to them reruns the report stages
        for name in ("tables", "figures"):
            stages[name]["params"] = [{CONFIG_FILE: ["report"]}]
        stages["tables"]["params"][0][CONFIG_FILE].append("bases")  # `orchmoe params` reads the base architectures
    plots = [f"{FIGURE_DIR}/{f}.png" for f in FIGURE_NAMES]
    return {"stages": stages, "metrics": [summary], "plots": plots}


rule dvc_yaml:
    """Write dvc.yaml for this config (glue, no experiment logic)."""
    output:
        "dvc.yaml",
    localrule: True
    run:
        header = (f"# GENERATED by `snakemake dvc_yaml --forcerun dvc_yaml --configfile {CONFIG_FILE}` from the Snakefile: "
                  "do not edit.\n# Stages run Snakemake phase targets; see docs/workflow.md.\n")
        with open(output[0], "w") as f:
            f.write(header + _yaml.safe_dump(dvc_stages(), sort_keys=False, width=120))
