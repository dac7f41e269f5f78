"""Snakemake and DVC agree on what is stale (issue 13): in a fresh clone run once with `dvc repro` on a cut-down CI
config, an edit to the trainer, to a base's target_modules or to the metrics code makes both tools plan exactly the
same phases: `snakemake --dry-run` the jobs, `dvc status` the stages. The trainer edit is then reproduced for real:
`dvc repro` runs train and what follows, and afterwards Snakemake plans nothing (its params-change trigger saw the
same code fingerprint DVC hashed). Config keys (issue 20; every key is checked without running the tools by
tests/workflow/test_config_staleness.py): a sampling value, a tiny base's seed and the evaluation batch size mark
the same phases in both tools, and the first two, reproduced by `dvc repro` of their stage, change the outputs.
A dvc.yaml that lags the Snakefile stops `dvc repro` in one line."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from .conftest import CI_CONFIG, copy_checkout, run

pytestmark = pytest.mark.integration

CONFIG = "config/stale.yaml"
TINY = "tiny-rand"
DATA_RULES = {"builtin_suite", "sample_suite", "sample_primitives", "domain_suite"}
AFTER_TRAIN = {"train", "evaluate", "tables", "figures"}


def small_config(repo) -> None:
    """config/ci.yaml cut to two methods and a few steps: enough DAG to tell the phases apart."""
    cfg = yaml.safe_load((repo / CI_CONFIG).read_text())
    cfg["experiment"] = "stale"
    cfg["bases"]["tiny-t5"]["pretrain"]["steps"] = 10
    # a random-init twin (source: tiny), built from its spec inside each train / evaluate job, for lora only
    cfg["bases"][TINY] = {"source": "tiny", "arch": "t5", "target_modules": ["q", "v"],
                          "tiny": {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64, "seed": 0}}
    cfg["methods"] = {"lora": {"method": "lora", "rank": 2},
                      "orchmoe": {"method": "orchmoe", "rank": 2, "n_skills": 2, "bases": ["tiny-t5"]}}
    cfg["train"].update(max_steps=2, save_every=2, log_every=1)
    (repo / CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = copy_checkout(tmp_path_factory.mktemp("stale"))
    small_config(repo)
    run(["snakemake", "dvc_yaml", "--cores", "1", "--configfile", CONFIG, "--forcerun", "dvc_yaml"], repo,
        "staleness: generate dvc.yaml")
    for step, cmd in (("init", ["git", "init", "-q"]), ("add", ["git", "add", "-A"]),
                      ("commit", ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "ci"])):
        run(cmd, repo, f"staleness: git {step}")
    run(["orchmoe", "warm", "--", "dvc", "repro"], repo, "staleness: dvc repro (first run, warm)", timeout=1800)
    return repo


def planned(repo) -> set[str]:
    dry = run(["snakemake", "--cores", "1", "--configfile", CONFIG, "--dry-run"], repo, "staleness: snakemake -n").stdout
    return set(re.findall(r"^rule (\w+):", dry, flags=re.M)) - {"default", "all"}


def changed_stages(repo) -> set[str]:
    out = run(["dvc", "status", "--json"], repo, "staleness: dvc status").stdout
    return set(json.loads(out or "{}"))


def edit_function(path, name: str) -> None:
    """Add a statement to the body of function `name` (a real code change, no behaviour change)."""
    text = path.read_text()
    m = re.search(rf"^(\s*)def {name}\(.*?\).*?:\n", text, flags=re.M | re.S)
    assert m, f"no def {name} in {path}"
    indent = m.group(1) + "    "
    path.write_text(text[: m.end()] + f"{indent}_edited = True  # staleness test\n" + text[m.end():])


def revert(repo) -> None:
    run(["git", "checkout", "--", "."], repo, "staleness: git checkout (revert the edit)")
    assert planned(repo) == set() and changed_stages(repo) == set(), "reverting the edit left something stale"


def test_clean_after_first_run(repo):
    assert planned(repo) == set()
    assert changed_stages(repo) == set()


def test_metrics_edit_reruns_evaluation_and_report_only(repo):
    edit_function(repo / "src/orchmoe/metrics/superni.py", "exact_match")
    jobs = planned(repo)
    # figures read the evaluation outputs too, so they follow evaluation
    assert jobs == {"evaluate", "tables", "figures"}, jobs
    # DVC marks the stages whose own code changed: evaluation, and the report stages whose commands import the
    # metrics package too (skill recovery in the study table and figures); never training or anything before it
    changed = changed_stages(repo)
    assert "evaluate" in changed and changed <= {"evaluate", "tables", "figures"}, changed
    revert(repo)


def test_target_modules_edit_retrains_in_both(repo):
    cfg = yaml.safe_load((repo / CONFIG).read_text())
    cfg["bases"]["tiny-t5"]["target_modules"] = ["q", "v"]
    (repo / CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = planned(repo)
    assert jobs == AFTER_TRAIN, jobs  # no pretraining: the base model does not depend on target_modules
    assert changed_stages(repo) == {"train"}
    revert(repo)


def test_trainer_edit_reruns_train_and_after_then_both_agree(repo):
    edit_function(repo / "src/orchmoe/training/trainer.py", "write_outputs")
    jobs = planned(repo)
    assert jobs == AFTER_TRAIN, jobs
    assert not jobs & (DATA_RULES | {"pretrain_base"})
    assert changed_stages(repo) == {"train"}
    proc = run(["orchmoe", "warm", "--", "dvc", "repro"], repo, "staleness: dvc repro after the trainer edit (warm)",
               timeout=1800)
    out = proc.stdout + proc.stderr
    ran = set(re.findall(r"Running stage '([\w-]+)'", out))
    assert ran == {"train", "evaluate", "tables", "figures"}, out[-3000:]
    assert re.search(r"Stage 'data' didn't change, skipping", out)
    # Snakemake recorded the fingerprint DVC hashed: neither tool sees anything stale afterwards
    assert planned(repo) == set()
    assert changed_stages(repo) == set()


def edit_config(repo, path: str, value) -> None:
    cfg = yaml.safe_load((repo / CONFIG).read_text())
    node = cfg
    for key in path.split(".")[:-1]:
        node = node[key]
    node[path.split(".")[-1]] = value
    (repo / CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))


def undo(repo) -> None:
    """Restore the committed config (only it: the trainer edit reproduced above stays, as dvc.lock has it)."""
    run(["git", "checkout", "--", CONFIG], repo, "staleness: git checkout (undo the config edit)")


@pytest.mark.parametrize(("key", "value", "jobs", "stages"), [
    ("suites.builtin.n_train", 30, {"sample_suite"} | AFTER_TRAIN, {"data"}),
    (f"bases.{TINY}.tiny.seed", 1, AFTER_TRAIN, {"train", "evaluate"}),
    ("evaluate.batch_size", 7, {"evaluate", "tables", "figures"}, {"evaluate"}),
])
def test_config_key_marks_the_same_phases_in_both_tools(repo, key, value, jobs, stages):
    edit_config(repo, key, value)
    assert planned(repo) == jobs
    assert changed_stages(repo) == stages
    undo(repo)


def test_a_stale_dvc_yaml_stops_dvc_in_one_line(repo):
    """dvc.yaml's code deps lag the import graph once the trainer imports a module it did not: the train stage
    stops before any job, naming the command that regenerates dvc.yaml."""
    trainer = repo / "src/orchmoe/training/trainer.py"
    source = trainer.read_text()
    trainer.write_text(source + "\nimport orchmoe.serving  # staleness test: a new import\n")
    assert changed_stages(repo) == {"train"}
    proc = run(["dvc", "repro", "--single-item", "train"], repo, "staleness: dvc repro (stale dvc.yaml)", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if "dvc.yaml is out of date" in line]
    assert lines == [f"dvc.yaml is out of date for {CONFIG} (stage train): run `snakemake dvc_yaml --cores 1 "
                     f"--forcerun dvc_yaml --configfile {CONFIG}`, then rerun dvc"], out[-3000:]
    assert "Job stats" not in out  # stopped before planning any job
    trainer.write_text(source)
    assert changed_stages(repo) == set()


def tiny_seeds(node) -> set:
    """The seeds of the tiny base specs recorded anywhere in a run.json (as a dict or as the JSON --base string)."""
    if isinstance(node, str) and node.startswith("{"):
        try:
            node = json.loads(node)
        except ValueError:
            return set()
    if isinstance(node, dict):
        own = {node.get("seed", 0)} if node.get("source") == "tiny" else set()
        return own.union(*(tiny_seeds(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(tiny_seeds(v) for v in node))
    return set()


def test_reruns_reflect_the_new_values(repo):
    """`dvc repro` of a config edit changes the outputs. Before issue 20 the data stage ran and Snakemake sampled
    nothing (n_train reached the job only through an unrecorded param), and a tiny base's seed was no DVC param:
    dvc.lock vouched for outputs of the old values. The last test of the module: it leaves the repository edited
    (restoring would cost two more reruns)."""
    run_json = repo / f"results/checkpoints/stale/builtin/{TINY}/lora/seed0/run.json"
    assert tiny_seeds(json.loads(run_json.read_text())) == {0}
    edit_config(repo, f"bases.{TINY}.tiny.seed", 1)
    run(["orchmoe", "warm", "--", "dvc", "repro", "--single-item", "train"], repo, "staleness: dvc repro train (seed)")
    assert tiny_seeds(json.loads(run_json.read_text())) == {1}  # retrained on the new base
    assert "train" not in changed_stages(repo)

    manifest = repo / "data/processed/stale/builtin/manifest.json"
    assert json.loads(manifest.read_text())["params"]["n_train"] == 40
    edit_config(repo, "suites.builtin.n_train", 30)
    run(["orchmoe", "warm", "--", "dvc", "repro", "--single-item", "data"], repo, "staleness: dvc repro data (n_train)")
    assert json.loads(manifest.read_text())["params"]["n_train"] == 30  # resampled
    assert "data" not in changed_stages(repo)
