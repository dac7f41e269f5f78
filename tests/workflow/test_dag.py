"""Every config builds its DAG in seconds with the expected job counts; config typos fail naming the key."""
from __future__ import annotations

import time

import pytest
import yaml

from .helpers import CONFIGS, REPO, copy_workflow, job_counts, snakemake

# Expected counts follow from the configs (documented in docs/workflow.md), e.g. paper-orchmoe:
# (Tables 1-2: 2 suites x 2 bases x 5 methods + Table 3: 2 suites x 2 bases x 5 methods at 10 epochs + Table 4:
# 4 abstract-task points + Figure 2: 5 methods x 3 ranks) x 3 seeds = 177 training jobs; every run on its seen
# tasks, the Table 2 runs (ni100, 1 epoch, T5-XXL and GLM-10B) and Table 4's on the unseen ones too: 59 x 3 + 14 x 3,
# plus the no-adapter base per suite x base x split used (8) = 227 evaluations.
EXPECTED = {
    # demo: (2 bases x (6 runs + 6 per-domain LoRAs)) x 1 seed; eval split for all + the no-adapter base, held-out
    # compositions (unseen) for all but the per-domain LoRAs, which the demo does not evaluate on their own
    # (evaluate.per_domain_runs: false): 12 + 2 + 12 + 2 = 28 evaluations; few-shot adaptation (rule adapt) on the
    # held-out compositions for the 6 non-per-domain runs x 2 bases = 12
    "demo": {"train": 24, "evaluate": 28, "adapt": 12, "pretrain_base": 2, "domain_suite": 6, "total": 78},
    "ci": {"train": 8, "evaluate": 9, "pretrain_base": 1, "domain_suite": 2, "total": 26},
    "superni-sample": {"train": 10, "evaluate": 24, "pretrain_base": 1, "fetch_smollm2": 1, "total": 42},
    "paper-orchmoe": {"train": 177, "evaluate": 227, "sample_suite": 2, "fetch_base": 3, "superni_download": 1,
                      "params_table": 1, "paper_tables": 1, "paper_figures": 1, "total": 416},
    "paper-moa": {"train": 36, "evaluate": 37, "domain_suite": 8, "fetch_base": 1, "paper_tables": 1, "total": 88},
    # the minis: the paper DAGs (all three seeds) without the download rules
    "paper-orchmoe-mini": {"train": 177, "evaluate": 227, "sample_suite": 2, "paper_tables": 1, "paper_figures": 1,
                           "total": 412},
    "paper-moa-mini": {"train": 36, "evaluate": 37, "domain_suite": 8, "paper_tables": 1, "total": 87},
    "study": {"train": 42, "evaluate": 68, "adapt": 24, "pretrain_base": 1, "domain_suite": 6, "total": 147},
    "ablation": {"train": 12, "evaluate": 13, "pretrain_base": 1, "total": 32},
}


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


@pytest.mark.parametrize("name", CONFIGS)
def test_dry_run_job_counts(wf, name):
    start = time.time()
    out = snakemake("-n", "--cores", "2", "--configfile", f"config/{name}.yaml", cwd=wf).stdout
    elapsed = time.time() - start
    counts = job_counts(out)
    for rule, n in EXPECTED[name].items():
        assert counts.get(rule) == n, (name, rule, counts)
    assert elapsed < 60, f"dry run of {name} took {elapsed:.0f} s"


def test_study_adapts_every_routed_run_from_its_checkpoint(wf):
    """Few-shot jobs start from the run's own checkpoint and write the 'fewshot' split the study table reads."""
    out = snakemake("-n", "-p", "--cores", "2", "--configfile", "config/study.yaml", cwd=wf).stdout
    assert out.count("orchmoe adapt ") == 24
    for run in ("lora", "moe_lora", "poly", "mhr", "orchmoe", "moa", "oracle", "lora_task"):
        assert (f"--checkpoint results/checkpoints/study/builtin/tiny-t5/{run}/seed2"
                f" --data data/processed/study/builtin --out results/eval/study/builtin/tiny-t5/{run}/seed2/fewshot") in out
    assert "--n-unseen-train 16" in out
    assert "--oracle-skills data/raw/study/builtin/skills.json" in out and " --per-task" in out  # the references


def test_moa_waits_for_single_lora_checkpoints(wf):
    out = snakemake("results/checkpoints/paper-moa/moa8/baichuan-7b/moa/seed0", "-n", "-p", "--cores", "2",
                    "--configfile", "config/paper-moa.yaml", cwd=wf).stdout
    assert out.count("rule train:") == 9  # 8 single LoRAs + MoA
    assert "--init-skills results/checkpoints/paper-moa/moa8/baichuan-7b/single@finance/seed0" in out
    out = snakemake("results/checkpoints/paper-moa/moa8/baichuan-7b/moe_lora/seed0", "-n", "--cores", "2",
                    "--configfile", "config/paper-moa.yaml", cwd=wf).stdout
    assert out.count("rule train:") == 9  # the slides' MoE-LoRA starts from the single LoRAs too
    out = snakemake("results/checkpoints/paper-moa/moa8/baichuan-7b/moe_lora_naive/seed0", "-n", "--cores", "2",
                    "--configfile", "config/paper-moa.yaml", cwd=wf).stdout
    assert out.count("rule train:") == 1  # MoE-LoRA (naive): "all LoRA modules are randomly initialized"


def test_paper_orchmoe_spends_no_gpu_on_unused_outputs(wf):
    """No second T = 100 run (orchmoe is T = number of tasks), unseen evaluations only where Tables 2 and 4 use
    them, and every hub base fetched by a local rule before the GPU jobs that read its folder."""
    out = snakemake("-n", "-p", "--cores", "2", "--configfile", "config/paper-orchmoe.yaml", cwd=wf).stdout
    assert "n_abstract_tasks100" not in out and "orchmoe_T-n_abstract_tasks80" in out
    unseen = {line.split("results/eval/paper-orchmoe/")[1].split("/seed")[0]
              for line in out.splitlines() if line.strip().startswith("output: results/eval/") and line.endswith("/unseen")}
    table2 = {f"ni100/{b}/{m}" for b in ("t5-xxl", "glm-10b") for m in ("lora", "moe_lora", "poly", "mhr", "orchmoe")}
    table4 = {f"ni100/glm-10b/orchmoe_T-n_abstract_tasks{t}" for t in (80, 60, 40, 20)}
    floors = {"ni100/t5-xxl/base", "ni100/glm-10b/base"}
    assert unseen == table2 | table4 | floors
    assert "--base models/paper-orchmoe/glm-10b" in out or "models/paper-orchmoe/glm-10b" in out
    smk = (REPO / "workflow/rules/models.smk").read_text() + (REPO / "workflow/rules/data.smk").read_text()
    for rule in ("fetch_base", "fetch_smollm2", "superni_download"):
        block = smk[smk.index(f"rule {rule}:"):]
        assert "localrule: True" in block[:block.index("shell:")], rule


def test_moa_starts_from_peft_lora_folders_given_by_path(wf, tmp_path):
    """init_from as a list: PEFT LoRA folders (e.g. from a hub), inputs of the MoA job and passed as its skills."""
    cfg = yaml.safe_load((wf / "config" / "ci.yaml").read_text())
    domains = cfg["suites"][next(iter(cfg["suites"]))]["domains"]
    folders = [tmp_path / f"hub-{d}" for d in domains]
    for f in folders:
        f.mkdir()
    cfg["methods"] = {"moa": {"method": "moa", "rank": 2, "init_from": [str(f) for f in folders]}}
    (wf / "config" / "peft-init.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake("train_all", "-n", "-p", "--cores", "1", "--configfile", "config/peft-init.yaml", cwd=wf).stdout
    assert out.count("rule train:") == 1
    assert "--init-skills " + " ".join(str(f) for f in folders) in out


def test_training_declares_resources_benchmark_and_undeclared_work(wf):
    out = snakemake("results/checkpoints/paper-orchmoe/ni10/t5-xxl/orchmoe/seed13", "-n", "-p", "--cores", "2",
                    "--configfile", "config/paper-orchmoe.yaml", cwd=wf).stdout
    block = out[out.index("rule train:"):]
    assert "gpu=1" in block and "mem_mb=120000" in block and "runtime=1440" in block
    assert "--work work/paper-orchmoe/ni10/t5-xxl/orchmoe/seed13" in block
    assert "output: results/checkpoints/paper-orchmoe/ni10/t5-xxl/orchmoe/seed13" in block  # work/ not an output
    smk = (REPO / "workflow/rules/train.smk").read_text()
    assert "benchmark:" in smk and "log:" in smk


def _validate(cfg):
    from snakemake.utils import validate

    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_are_valid(name):
    _validate(yaml.safe_load((REPO / f"config/{name}.yaml").read_text()))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["train"].update(lrr=0.1), "'lrr' was unexpected"),
    (lambda c: c["methods"]["lora"].update(rnak=4), "'rnak' was unexpected"),
    (lambda c: c["suites"]["builtin"].update(n_trian=3), "'n_trian' was unexpected"),
    (lambda c: c.update(seed=[0]), "'seed' was unexpected"),
    (lambda c: c["bases"]["tiny-t5"].update(source="pretrained"), "'pretrained' is not one of"),
    # an unknown method is the registry's check in rules/common.smk, not the schema's: tests/test_bad_inputs.py
    (lambda c: c.update(seeds="zero"), "'zero' is not of type 'array'"),
    (lambda c: c["train"].update(lr=-1), "-1 is less than or equal to the minimum of 0"),
])
def test_config_errors_name_the_key_or_value(edit, message):
    from snakemake.exceptions import WorkflowError

    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    edit(cfg)
    with pytest.raises(WorkflowError, match=message.replace("(", r"\(")):
        _validate(cfg)


def test_typo_fails_the_workflow_at_start(wf, tmp_path):
    cfg = yaml.safe_load((wf / "config/demo.yaml").read_text())
    cfg["train"]["lrr"] = 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--cores", "1", "--configfile", str(bad), cwd=wf, check=False)
    assert proc.returncode != 0 and "'lrr' was unexpected" in proc.stdout + proc.stderr


def test_default_target_from_the_root_is_the_demo(wf):
    """No -s, no --configfile: the root Snakefile's default rule on config/demo.yaml."""
    out = snakemake("-n", "--cores", "1", cwd=wf).stdout
    assert "rule default:" in out and job_counts(out)["total"] == EXPECTED["demo"]["total"]
