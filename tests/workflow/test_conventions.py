"""Snakemake workflow catalog conventions: a conda env on every rule that runs a command, every config key described
in config/README.md, the catalog's usage file."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = "../envs/orchmoe.yaml"


def _rules(text: str) -> dict[str, str]:
    """rule name -> its body, for one .smk file."""
    parts = re.split(r"^(?:rule|checkpoint) (\w+):\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_rule_with_a_command_names_the_conda_env():
    checked = 0
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for name, body in _rules(smk.read_text()).items():
            body = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]  # up to the next top-level statement
            if re.search(r"^    (shell|script):", body, flags=re.M):
                assert re.search(rf'^    conda:\n        "{re.escape(ENV)}"', body, flags=re.M), \
                    f"{smk.name}: rule {name} runs a command without `conda: \"{ENV}\"`"
                checked += 1
    assert checked >= 10
    assert (REPO / "workflow" / "envs" / "orchmoe.yaml").is_file()


def test_conda_dry_run_resolves_every_env_file(tmp_path):
    """`snakemake -n --sdm conda` reads every rule's env file (a missing one fails). conda itself is not installed on
    every machine that runs the tests: there, a stand-in answers only the three questions Snakemake asks before a dry
    run (version, `info --json`, channel priority); a dry run creates no environment either way."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    if shutil.which("conda", path=env["PATH"]) is None:
        stub = tmp_path / "bin" / "conda"
        stub.parent.mkdir()
        stub.write_text('#!/bin/sh\ncase "$*" in\n  "--version") echo "conda 24.7.1";;\n'
                        '  "info --json") echo \'{"platform": "linux-64", "conda_prefix": "/nonexistent"}\';;\n'
                        '  "config --get channel_priority --json") echo \'{"get": {"channel_priority": "strict"}}\';;\n'
                        '  *) echo "conda stand-in: $* not available" >&2; exit 1;;\nesac\n')
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
        env["PATH"] = f"{stub.parent}{os.pathsep}{env['PATH']}"
    work = tmp_path / "work"
    work.mkdir()
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
           str(REPO / "config" / "ci.yaml"), "-n", "--sdm", "conda", "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"Conda environment \S*envs/orchmoe\.yaml will be created", out), out[-3000:]


def _schema_keys(node, path=""):
    if not isinstance(node, dict):
        return
    for key, sub in (node.get("properties") or {}).items():
        yield path + key
        yield from _schema_keys(sub, f"{path}{key}.")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _schema_keys(node["additionalProperties"], f"{path}<name>.")


def test_config_readme_describes_every_schema_key():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    readme = (REPO / "config" / "README.md").read_text()
    keys = list(_schema_keys(schema))
    missing = [k for k in keys if f"`{k.rsplit('.', 1)[-1]}`" not in readme]
    assert len(keys) > 70 and not missing, f"config/README.md does not describe: {missing}"


def test_catalog_usage_file():
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    assert (REPO / "workflow" / "Snakefile").is_file() and (REPO / "config" / "README.md").is_file()
