# The workflow lives in workflow/ (Snakemake's recommended layout); this shim lets `snakemake` run from the root.
include: "workflow/Snakefile"


# An included file cannot set the default target (Snakemake keeps the including file's), so name it here.
rule default:
    default_target: True
    localrule: True
    input:
        rules.all.input,
