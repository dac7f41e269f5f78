# orchmoe: data -> base models -> training (experiment x base x method x seed) -> evaluation -> tables -> figures.
# Rules only call the `orchmoe` CLI; the logic lives in src/orchmoe. Config: config/demo.yaml unless --configfile.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/demo.yaml"


include: "workflow/rules/common.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        TABLES,
        FIGURES,


rule data_all:
    input:
        SUITE_MANIFEST,


rule bases_all:
    input:
        BASE_DIRS,


rule train_all:
    input:
        CHECKPOINTS,


rule evaluate_all:
    input:
        EVALS,


include: "workflow/rules/data.smk"
include: "workflow/rules/bases.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
