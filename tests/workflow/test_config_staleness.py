"""No config value that shapes an output goes unrecorded (issue 20): for each leaf key of each shipped config, a
change to it marks the same phases stale for Snakemake and for DVC.

The keys come from the config files and the mutations from the schema (workflow/schemas/config.schema.yaml: an
enum's next value, a number + 1, a flag flipped, a list shortened, a path aliased), not from a hand-kept list.
Both verdicts are computed the way the tools compute them, inside one process (a `snakemake -n` + `dvc status`
per key would take an hour):
- Snakemake: the workflow is planned through its API for the shipped and the changed config; a job is stale when
  it is new, or its recorded params (`persistence._params`: the values the params trigger compares, so a param
  function that reads `input` does not count) or its input list differ.
- DVC: dvc.yaml is generated for both (`dvc_stages()`, what `snakemake dvc_yaml` writes); a stage is stale when it
  is new, its cmd changed (it carries the md5 of its deps and outs lists), or one of its `params` keys has another
  value in the file (DVC reads the file as written).
A job belongs to the stage whose outs hold its outputs. The phases must be equal, except that DVC also reruns a
phase that only lost jobs (a wasted Snakemake call that runs nothing there), never the other way round. tests/integration/test_staleness.py runs the real tools for a few keys and checks the outputs after a
rerun.
"""
from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import yaml

from .helpers import CONFIGS, REPO, copy_workflow

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
# Each leaf whose schema path (the user's names wildcarded) no config before it has shown: the same key of another
# method or base takes the same code path, and the whole set stays within CI's time (about 150 plans).
# ORCHMOE_EVERY_KEY=1 checks every leaf of every config (about 950 plans).
SEEN: set[tuple] = set()  # schema paths checked so far in this session


def leaves(node, path=()):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield path


def schema_at(path):
    """The schema of the value at `path` (following additionalProperties and $ref)."""
    node = SCHEMA
    for key in path:
        while "$ref" in node:
            node = SCHEMA if node["$ref"] == "#" else _ref(node["$ref"])
        if key in node.get("properties", {}):
            node = node["properties"][key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    while "$ref" in node:
        node = _ref(node["$ref"])
    return node


def _ref(ref):
    node = SCHEMA
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def pattern(path):
    """The schema path of a key: the user's names (suites, bases, methods, report items and their run and line
    labels) wildcarded."""
    named = {"suites": {1}, "bases": {1}, "methods": {1}, "report": {2, 4} if path[3:4] in (("runs",), ("lines",))
             else {2}}
    return tuple("*" if i in named.get(path[0], ()) else k for i, k in enumerate(path))


def mutated(value, schema, wf: Path):
    """Another valid value for a key, from its schema; None if there is none."""
    if "enum" in schema:
        others = [v for v in schema["enum"] if v != value]
        return others[0] if others else None
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 if value else 0.5
    if value is None:
        return 1
    if value == "all":  # suites.*.n_tasks
        return 3
    if isinstance(value, str):
        if (wf / value).exists():  # a path: the same files under another name
            alias = Path("aliases") / Path(value).name
            if not (wf / alias).exists():
                (wf / alias).parent.mkdir(exist_ok=True)
                (wf / alias).symlink_to((wf / value).resolve())
            return str(alias)
        return value + "x"
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):  # seeds
            return [*value, max(value) + 1]
        if len(value) > 1:
            return value[:-1]
        if all(isinstance(v, str) for v in value):
            return [value[0] + "x"]
    return None


def set_at(cfg, path, value):
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def get_at(cfg, path):
    node = cfg
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return KeyError
        node = node[key]
    return node


@pytest.fixture(scope="module")
def planner(tmp_path_factory):
    """plan(config name, config dict) -> (jobs, dvc stages, raw config) or the reason the workflow refused it."""
    from snakemake.api import SnakemakeApi  # first: snakemake.workflow imports it

    # isort: split
    from snakemake import parser
    from snakemake import workflow as sm_workflow
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    wf = copy_workflow(tmp_path_factory.mktemp("keys"))
    # Compiling the .smk files does not depend on the config: compile each once (the plans differ in config only).
    compiled = {}

    def parse(path, workflow, linemap, overwrite_shellcmd=None, rulecount=0):
        name = path.get_path_or_uri(secret_free=True)
        key = (name, os.stat(name).st_mtime_ns, overwrite_shellcmd, rulecount)
        if key not in compiled:
            lines = {}
            compiled[key] = (*parser.parse(path, workflow, lines, overwrite_shellcmd, rulecount), lines)
        code, count, lines = compiled[key]
        linemap.update(lines)
        return code, count

    def plan(name, cfg):
        file = Path(f"config/{name}.yaml")
        (wf / file).write_text(yaml.safe_dump(cfg, sort_keys=False))
        try:
            with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
                wf_api = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=wf / "Snakefile",
                                      config_settings=ConfigSettings(configfiles=[wf / file]), workdir=wf)
                wf_api.dag(DAGSettings())
                workflow = wf_api._workflow
                workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
                workflow._build_dag()
                jobs = {}
                for job in workflow.dag.jobs:
                    if job.output:
                        jobs[tuple(sorted(map(str, job.output)))] = (
                            job.rule.name, workflow.persistence._params(job), workflow.persistence._input(job))
                stages = workflow.globals["dvc_stages"]()["stages"]
        except (Exception, SystemExit) as e:  # a config the workflow refuses before planning: neither tool runs
            return f"{type(e).__name__}: {str(e)[:200]}"
        return jobs, stages, cfg

    plan.wf = wf
    # libyaml, where PyYAML has it: the same documents, parsed ten times faster (each plan reads the schema and
    # the config several times)
    safe_load = yaml.safe_load
    fast_load = lambda stream: yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: E731
    full_loader = yaml.FullLoader  # Snakemake reads configs and schemas through yte, which uses it
    original = sm_workflow.parse
    sm_workflow.parse, yaml.safe_load = parse, fast_load
    yaml.FullLoader = getattr(yaml, "CFullLoader", full_loader)
    try:
        yield plan
    finally:
        sm_workflow.parse, yaml.safe_load, yaml.FullLoader = original, safe_load, full_loader


def stage_of(path, stages):
    for name, stage in stages.items():
        for out in stage.get("outs", []) + stage.get("metrics", []):
            out = next(iter(out)) if isinstance(out, dict) else out
            if path == out or path.startswith(out.rstrip("/") + "/"):
                return name
    return None


def snakemake_stale(before, after):
    """Phases with a job that is new, or whose recorded params or input list changed; and the phases that lost a
    job (no job reruns there)."""
    (old_jobs, old_stages, _), (new_jobs, new_stages, _) = before, after
    stale, lost = {}, set()
    for outputs, (rule, params, inputs) in new_jobs.items():
        if old_jobs.get(outputs) != (rule, params, inputs):
            stale.setdefault(stage_of(outputs[0], new_stages), set()).add(rule)
    for outputs in old_jobs.keys() - new_jobs.keys():
        lost.add(stage_of(outputs[0], old_stages))
    return stale, lost


def dvc_stale(before, after):
    """Stages `dvc status` reports after the edit (dvc.yaml regenerated): new, cmd changed or a param changed."""
    (_, old_stages, old_cfg), (_, new_stages, new_cfg) = before, after
    stale = {}
    for name, stage in new_stages.items():
        old = old_stages.get(name)
        if old is None or old["cmd"] != stage["cmd"]:
            stale[name] = {"cmd"}
            continue
        keys = [k for p in stage.get("params", []) for ks in p.values() for k in ks]
        changed = {k for k in keys if get_at(old_cfg, k.split(".")) != get_at(new_cfg, k.split("."))}
        if changed:
            stale[name] = changed
    return stale


# the full-size paper configs (large DAGs) last: most of their keys are checked already on their minis
ORDER = sorted(CONFIGS, key=lambda name: name.startswith("paper-") and not name.endswith("-mini"))


@pytest.mark.parametrize("name", ORDER)
def test_every_key_marks_the_same_phases_stale_for_both_tools(planner, name):
    start = time.monotonic()
    shipped = yaml.safe_load((REPO / f"config/{name}.yaml").read_text())
    before = planner(name, shipped)
    assert not isinstance(before, str), f"config/{name}.yaml: {before}"
    every = os.environ.get("ORCHMOE_EVERY_KEY") == "1"
    checked, refused, disagree = [], [], []
    for path in leaves(shipped):
        if not every and pattern(path) in SEEN:
            continue
        SEEN.add(pattern(path))
        value = mutated(get_at(shipped, path), schema_at(path), planner.wf)
        if value is None:
            refused.append((path, "no other value"))
            continue
        cfg = copy.deepcopy(shipped)
        set_at(cfg, path, value)
        after = planner(name, cfg)
        if isinstance(after, str):
            refused.append((path, after))
            continue
        checked.append(path)
        (sm, lost), dvc = snakemake_stale(before, after), dvc_stale(before, after)
        # DVC reruns a phase that only lost jobs (its outs list changed: the cmd carries its md5; see
        # dvc_stages.smk), where Snakemake then runs nothing: one wasted call, never a stale result
        if not set(sm) <= set(dvc) <= set(sm) | lost:
            disagree.append(f"{'.'.join(map(str, path))} = {value!r}: snakemake {sm} (lost jobs: {lost or '-'}), "
                            f"dvc {dvc}")
    print(f"config/{name}.yaml: {len(checked)} keys checked in {time.monotonic() - start:.1f} s; no valid change of "
          + ", ".join(f"{'.'.join(map(str, p))} ({why.splitlines()[0][:80]})" for p, why in refused))
    assert not disagree, "a config key marks different phases stale for Snakemake and DVC:\n" + "\n".join(disagree)
    # refused: mostly a `method` renamed or a base's `source` switched without the keys it needs (the config
    # checks stop both tools); the guard catches a mutation scheme that stops producing valid configs
    assert len(checked) >= 0.7 * (len(checked) + len(refused)), f"too few keys could be changed: {refused}"
