"""dvc.yaml is generated from the Snakefile: regenerating it must give the committed file (drift test), and every
output of every phase target lies under one of that DVC stage's outs."""
from __future__ import annotations

import os

import pytest
import yaml

from .helpers import REPO, copy_workflow, snakemake

PHASES = {"data": "data_all", "models": "models_all", "train": "train_all", "evaluate": "evaluate_all",
          "tables": "tables_all", "figures": "figures_all"}


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def test_dvc_yaml_is_generated_from_the_snakefile(wf):
    (wf / "dvc.yaml").unlink()
    snakemake("--cores", "1", "dvc_yaml", cwd=wf)
    assert (wf / "dvc.yaml").read_text() == (REPO / "dvc.yaml").read_text(), (
        "dvc.yaml drifted from the Snakefile: run `snakemake dvc_yaml --forcerun dvc_yaml` and commit it")


def _outs(stage) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", []) + stage.get("metrics", [])]


def test_every_output_of_the_dag_is_a_dvc_out(wf):
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert set(dvc["stages"]) <= set(PHASES)
    for stage_name, stage in dvc["stages"].items():
        assert stage["cmd"].startswith(f"snakemake {PHASES[stage_name]} "), stage["cmd"]
        assert _outs(stage)
    # one summary of the whole DAG (all phases): output_file, date, rule, log, status, plan
    summary = snakemake("--summary", "--forceall", "--cores", "1", cwd=wf).stdout
    rows = [line.split("\t") for line in summary.splitlines()[1:] if "\t" in line]
    produced = [r[0] for r in rows if r[2] not in ("default", "all", "dvc_yaml", *PHASES.values())]
    assert len(produced) > 50
    all_outs = [o.rstrip("/") for s in dvc["stages"].values() for o in _outs(s)]
    for path in produced:
        assert any(path == o or path.startswith(o + "/") for o in all_outs), f"{path} is in no dvc.yaml out"


def test_training_and_evaluation_outs_persist():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name in ("train", "evaluate"):
        for out in dvc["stages"][name]["outs"]:
            assert next(iter(out.values()))["persist"] is True


def test_default_local_remote():
    cfg = (REPO / ".dvc/config").read_text()
    assert "remote = local" in cfg and "url = ../dvc-remote" in cfg
    assert "/dvc-remote/" in (REPO / ".gitignore").read_text()


def test_a_dvc_stage_stops_in_one_line_when_dvc_yaml_lags_the_import_graph(tmp_path):
    """DVC sets DVC_STAGE for a stage's command: Snakemake then checks dvc.yaml first. The trainer importing a
    module it did not import before changes the train stage's code deps: the stage stops before any job."""
    wf = copy_workflow(tmp_path)
    stage = {**os.environ, "DVC_STAGE": "train"}
    assert snakemake("--cores", "1", "-n", "train_all", cwd=wf, env=stage).returncode == 0
    trainer = wf / "src/orchmoe/training/trainer.py"
    trainer.write_text(trainer.read_text() + "\nimport orchmoe.serving  # a new import\n")
    proc = snakemake("--cores", "1", "-n", "train_all", cwd=wf, env=stage, check=False)
    assert proc.returncode == 2
    assert (proc.stdout + proc.stderr).strip().splitlines() == [
        "dvc.yaml is out of date for config/demo.yaml (stage train): run `snakemake dvc_yaml --cores 1 --forcerun "
        "dvc_yaml --configfile config/demo.yaml`, then rerun dvc"]
    # outside DVC, Snakemake plans as always (the new import is in the train jobs' code fingerprint)
    assert "train" in snakemake("--cores", "1", "-n", "train_all", cwd=wf).stdout


def test_a_method_file_added_later_changes_the_stages_that_run_methods():
    """Method files are found at run time, so DVC lists their folder: a new file there changes its hash (a list of
    today's files would not), and the stage reaches its dvc.yaml check."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    folder = "src/orchmoe/adapters/methods"
    for name in ("train", "evaluate"):
        deps = dvc["stages"][name]["deps"]
        assert folder in deps, name
        assert not [d for d in deps if os.path.dirname(d) == folder], (name, "method files listed one by one")
