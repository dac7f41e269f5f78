# dvc.yaml is GENERATED from this DAG (one definition of the pipeline): `snakemake dvc_yaml --cores 1 --forcerun dvc_yaml`
# (add --configfile for another experiment). One DVC stage per phase, each calling the phase's Snakemake target;
# every dataset, base model, checkpoint, evaluation, table and figure is its own out, so dvc.lock records an md5
# for each. Data, model, training and evaluation outs persist: DVC would otherwise delete them before the stage
# runs, and Snakemake would redo every job instead of only those whose inputs or params changed. tests/workflow/test_dvc_sync.py fails when dvc.yaml drifts from this.


include: "dvc_stages.smk"


rule dvc_yaml:
    """Write dvc.yaml for this config (glue, no experiment logic)."""
    output:
        "dvc.yaml",
    log:
        "logs/dvc_yaml.log",
    localrule: True
    run:
        write_dvc_yaml(output[0])
        shell("echo wrote {output:q} for {CONFIG_FILE:q} > {log:q}")


# Every rule is defined by now (dvc.smk is included last): a DVC stage's Snakemake call checks dvc.yaml first.
check_dvc_yaml_current()
