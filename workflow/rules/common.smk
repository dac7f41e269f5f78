# Config validation and the run table (experiment x base x method x seed), derived once and used everywhere.
import json

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

EXP = config["experiment"]
BASES = list(config["bases"])
METHODS = list(config["methods"])
SEEDS = config["seeds"]
RAW = f"data/raw/{EXP}"
SUITE = f"data/processed/{EXP}/suite"
PRIMITIVES = f"data/processed/{EXP}/primitives"
SUITE_MANIFEST = f"{SUITE}/manifest.json"
BASE_DIRS = expand("results/bases/{exp}/{base}", exp=EXP, base=BASES)
CHECKPOINTS = expand("results/checkpoints/{exp}/{base}/{method}/seed{seed}", exp=EXP, base=BASES, method=METHODS,
                     seed=SEEDS)
EVAL_METHODS = ["base"] + METHODS  # "base": the frozen base model without adapters, the floor row
EVALS = expand("results/eval/{exp}/{base}/{method}/seed{seed}", exp=EXP, base=BASES, method=EVAL_METHODS, seed=SEEDS)
TABLE_DIR = f"results/tables/{EXP}"
FIGURE_DIR = f"results/figures/{EXP}"
TABLES = [f"{TABLE_DIR}/main.csv", f"{TABLE_DIR}/main.md", f"{TABLE_DIR}/main.tex", f"{TABLE_DIR}/metrics_long.csv"]
FIGURES = [f"{FIGURE_DIR}/training_curves.png", f"{FIGURE_DIR}/score_vs_params.png",
           f"{FIGURE_DIR}/task_clustering.png", f"{FIGURE_DIR}/task_clustering.csv"]


def as_json(obj):
    return "'" + json.dumps(obj, sort_keys=True) + "'"


def base_input(wildcards):
    base = config["bases"][wildcards.base]
    return [] if base["source"] == "path" else f"results/bases/{wildcards.exp}/{wildcards.base}"


def base_arg(wildcards):
    base = config["bases"][wildcards.base]
    return base["path"] if base["source"] == "path" else f"results/bases/{wildcards.exp}/{wildcards.base}"


def adapter_config(wildcards):
    entry = dict(config["methods"][wildcards.method])
    entry.setdefault("target_modules", config["bases"][wildcards.base]["target_modules"])
    return as_json(entry)
