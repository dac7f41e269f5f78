"""environment.yml and pyproject.toml must list the same dependencies with the same constraints."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# conda-forge names the same distributions differently
CONDA_TO_PYPI = {"pytorch": "torch"}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert m, spec
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pyproject = dict(_split(s) for s in project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pyproject.update(_split(s) for s in extra)

    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip: section installs the project itself
            assert dep == {"pip": ["-e ."]}, dep
            continue
        name, constraint = _split(dep)
        if name in {"python", "pip"}:
            continue
        conda[CONDA_TO_PYPI.get(name, name)] = constraint
    assert conda == pyproject


def test_python_floor():
    """snakemake 9 and transformers 5 need Python 3.11; pip and conda must say the same."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python>=3.11" in [str(d).replace(" ", "") for d in env["dependencies"]]


def test_workflow_env_pins_the_runtime_dependencies_like_pyproject():
    """workflow/envs/orchmoe.yaml (every rule's conda env) holds pyproject's runtime dependencies, same constraints;
    the package itself comes from its post-deploy script."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = dict(_split(s) for s in project["dependencies"])
    env = yaml.safe_load((REPO / "workflow" / "envs" / "orchmoe.yaml").read_text())
    conda = {}
    for dep in env["dependencies"]:
        name, constraint = _split(dep)
        if name not in {"python", "pip"}:
            conda[CONDA_TO_PYPI.get(name, name)] = constraint
    assert conda == runtime
    assert "pip install --no-deps -e ." in (REPO / "workflow" / "envs" / "orchmoe.post-deploy.sh").read_text()
