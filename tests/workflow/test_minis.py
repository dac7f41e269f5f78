"""The miniature twins are the paper DAGs at toy scale: generated from the paper configs (no drift), and their dry
runs have the same rules, seeds, job counts and outputs as the paper's, bases and experiment renamed."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from .helpers import REPO, copy_workflow, job_counts, snakemake

PAPERS = {"paper-orchmoe": "paper-orchmoe-mini", "paper-moa": "paper-moa-mini"}
# Rules that exist only because the paper's bases and data come from the internet (twins and fixtures do not).
DOWNLOADS = {"fetch_base", "superni_download"}


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


@pytest.mark.parametrize("paper", PAPERS)
def test_mini_config_is_generated_from_the_paper_config(paper):
    proc = subprocess.run([sys.executable, "workflow/scripts/mini_config.py", "--paper", f"config/{paper}.yaml",
                           "--overlay", f"config/mini/{paper}.yaml", "--out", f"config/{PAPERS[paper]}.yaml",
                           "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _outputs(stdout: str) -> set[str]:
    outs = set()
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("output:"):
            outs |= {p.strip() for p in line[len("output:"):].split(",")}
    return outs


@pytest.mark.parametrize("paper", PAPERS)
def test_mini_dag_equals_paper_dag(wf, paper):
    mini = PAPERS[paper]
    mcfg = yaml.safe_load((REPO / f"config/{mini}.yaml").read_text())
    pcfg = yaml.safe_load((REPO / f"config/{paper}.yaml").read_text())
    overlay = yaml.safe_load((REPO / f"config/mini/{paper}.yaml").read_text())
    assert mcfg["seeds"] == pcfg["seeds"] and len(mcfg["seeds"]) == 3  # the same seed count as the paper
    out_p = snakemake("-n", "--cores", "1", "--configfile", f"config/{paper}.yaml", cwd=wf).stdout
    out_m = snakemake("-n", "--cores", "1", "--configfile", f"config/{mini}.yaml", cwd=wf).stdout
    counts_p = {k: v for k, v in job_counts(out_p).items() if k not in DOWNLOADS}
    counts_m = job_counts(out_m)
    counts_p["total"] -= sum(v for k, v in job_counts(out_p).items() if k in DOWNLOADS)
    assert counts_p == counts_m
    assert not DOWNLOADS & set(counts_m)

    def normalise(paths, exp, names):
        pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
        return {pattern.sub(lambda m: names[m.group(0)], p.replace(f"/{exp}/", "/EXP/").replace(f"/{exp}.", "/EXP."))
                for p in paths if p.startswith(("results/", "data/processed/"))}

    renames = {b: f"BASE:{b}" for b in pcfg["bases"]}
    twin = {t: f"BASE:{b}" for b, t in overlay["rename_bases"].items()}
    assert normalise(_outputs(out_p), paper, renames) == normalise(_outputs(out_m), mini, twin)


@pytest.mark.parametrize("edit, message", [
    (lambda o: o["scale"].update(methods={"lora": {"rank": 2}}), "scale.methods: not a scale section"),
    (lambda o: o["scale"]["train"].update(epochs=1), "change more than scale"),
    (lambda o: o.update(seeds=[13]), "only experiment, rename_bases, bases, scale"),
])
def test_overlay_may_change_scale_only(tmp_path, edit, message):
    overlay = yaml.safe_load((REPO / "config/mini/paper-orchmoe.yaml").read_text())
    edit(overlay)
    (tmp_path / "o.yaml").write_text(yaml.safe_dump(overlay))
    proc = subprocess.run([sys.executable, "workflow/scripts/mini_config.py", "--paper", "config/paper-orchmoe.yaml",
                           "--overlay", str(tmp_path / "o.yaml"), "--out", str(tmp_path / "m.yaml")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", ["paper-orchmoe", "paper-moa", "paper-orchmoe-mini", "paper-moa-mini"])
def test_dvc_repro_can_start(wf, name):
    """dvc.yaml of each paper config: every dep is either a file of the checkout or an out of an EARLIER stage (the
    data stage once depended on the Super-NI folder it downloads itself: `dvc repro` could not start)."""
    snakemake("dvc_yaml", "--forcerun", "dvc_yaml", "--cores", "1", "--configfile", f"config/{name}.yaml", cwd=wf)
    stages = yaml.safe_load((wf / "dvc.yaml").read_text())["stages"]
    produced: set[str] = set()
    for stage, spec in stages.items():
        for dep in spec.get("deps", []):
            inside = any(dep == o or dep.startswith(o + "/") for o in produced)
            assert inside or (wf / dep).exists() or (REPO / dep).exists(), f"{name}: stage {stage} needs {dep}"
        outs = [next(iter(o)) if isinstance(o, dict) else o for k in ("outs", "metrics") for o in spec.get(k, [])]
        produced |= set(outs)
    if name == "paper-orchmoe":
        assert list(stages)[:2] == ["download", "data"]
