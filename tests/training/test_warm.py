"""`orchmoe warm -- COMMAND` (orchmoe/warm.py): jobs started under it run in a fork of a warm server and write exactly
what a cold run writes; a failing job keeps its exit code and its message; a killed job takes its child with it."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import FAST, TARGETS, tiny_spec

BIN = Path(sys.executable).parent


def _env():
    env = {k: v for k, v in os.environ.items() if k != "ORCHMOE_WARM"}
    return {**env, "PATH": f"{BIN}:{env['PATH']}", "OMP_NUM_THREADS": "1"}


def _jobs(tmp: Path, suite: Path, out: str) -> str:
    """A shell script of two orchmoe jobs (train, then evaluate), each logging to its own file as a rule does."""
    adapter = json.dumps({"method": "orchmoe", "target_modules": TARGETS["t5"], "rank": 2})
    script = tmp / f"{out}.sh"
    script.write_text(
        "set -e\n"
        f"orchmoe train --base '{tiny_spec('t5')}' --data {suite} --adapter-config '{adapter}' "
        f"--train-config '{json.dumps(FAST)}' --seed 3 --out {out}/ckpt --work {out}/work > {out}/train.log 2>&1\n"
        f"orchmoe evaluate --base '{tiny_spec('t5')}' --checkpoint {out}/ckpt --data {suite} --out {out}/eval "
        f"--max-source-length 96 --max-target-length 12 > {out}/eval.log 2>&1\n"
        f"python -c 'import os; print(os.environ.get(\"ORCHMOE_WARM\", \"\"))' > {out}/env.txt\n")
    (tmp / out).mkdir()
    return str(script)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_warm_jobs_write_what_cold_jobs_write(tmp_path, suite):
    for name, prefix in (("cold", []), ("warm", ["orchmoe", "warm", "--"])):
        proc = subprocess.run([*prefix, "bash", _jobs(tmp_path, suite, name)], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (name, proc.stderr[-2000:], (tmp_path / name / "train.log").read_text()[-2000:])
    assert (tmp_path / "warm/env.txt").read_text().strip(), "the command did not run under the warm server"
    assert not (tmp_path / "cold/env.txt").read_text().strip()
    runs = {name: json.loads((tmp_path / name / "ckpt/run.json").read_text()) for name in ("cold", "warm")}
    assert runs["warm"]["warm"] is True and runs["cold"]["warm"] is False  # the job really ran in a fork
    assert runs["warm"]["command"] == runs["cold"]["command"].replace("cold/", "warm/")
    for rel in ("ckpt/orchmoe_adapter.safetensors", "ckpt/routing.json", "eval/metrics.json",
                "eval/predictions.jsonl"):
        assert _md5(tmp_path / "warm" / rel) == _md5(tmp_path / "cold" / rel), rel
    logs = [(tmp_path / name / "ckpt/train_log.csv").read_text().splitlines() for name in ("cold", "warm")]
    assert logs[0][0].endswith(",seconds")  # every column but the wall clock is identical
    assert [r.rsplit(",", 1)[0] for r in logs[0]] == [r.rsplit(",", 1)[0] for r in logs[1]]
    assert "Traceback" not in (tmp_path / "warm/train.log").read_text()


def test_a_failing_job_keeps_its_exit_code_and_message(tmp_path):
    script = tmp_path / "bad.sh"
    script.write_text("orchmoe evaluate --base nowhere --checkpoint none --data missing --out o 2> err.txt\n"
                      "echo $? > code.txt\norchmoe no-such-command 2>> err.txt\necho $? >> code.txt\n")
    cold = subprocess.run(["bash", str(script)], cwd=tmp_path, env=_env(), timeout=300)
    cold_codes, cold_err = (tmp_path / "code.txt").read_text(), (tmp_path / "err.txt").read_text()
    warm = subprocess.run(["orchmoe", "warm", "--", "bash", str(script)], cwd=tmp_path, env=_env(), timeout=300)
    assert cold.returncode == warm.returncode == 0
    assert (tmp_path / "code.txt").read_text() == cold_codes == "2\n2\n"
    assert (tmp_path / "err.txt").read_text() == cold_err and "error" in cold_err


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _wait_for(predicate, what: str, timeout: float = 60):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_job_kills_its_child(tmp_path, suite):
    """Snakemake and DVC kill the job's process; the forked child doing the work must not outlive it."""
    adapter = json.dumps({"method": "lora", "target_modules": TARGETS["t5"], "rank": 2})
    endless = json.dumps({**FAST, "max_steps": 10**6, "save_every": 10**6})
    job_cmd = (f"orchmoe train --base '{tiny_spec('t5')}' --data {suite} --adapter-config '{adapter}' "
               f"--train-config '{endless}' --out ckpt --work work > train.log 2>&1 & echo $!; wait")
    proc = subprocess.Popen(["orchmoe", "warm", "--", "bash", "-c", job_cmd], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        job = int(proc.stdout.readline())
        shell = int(Path(f"/proc/{job}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the job's parent: bash
        server = _wait_for(lambda: [c for c in _children(proc.pid) if c != shell], "the warm server")[0]
        child = _wait_for(lambda: _children(server), "the job's child")[0]
        _wait_for(lambda: "loss=" in (tmp_path / "train.log").read_text(), "training to start", timeout=120)
        os.kill(job, signal.SIGKILL)
        _wait_for(lambda: not Path(f"/proc/{child}").exists(), "the child to end", timeout=30)
        proc.wait(timeout=60)
        _wait_for(lambda: not Path(f"/proc/{server}").exists(), "the server to stop with `orchmoe warm`", timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (tmp_path / "ckpt").exists()


def test_an_edit_to_the_package_sends_jobs_cold(tmp_path):
    """The server's imports are the code at its start; after an edit on disk its forks would run stale code."""
    from orchmoe import warm

    (tmp_path / "pkg/sub").mkdir(parents=True)
    for rel in ("pkg/__init__.py", "pkg/sub/mod.py"):
        (tmp_path / rel).write_text("x = 1\n")
    before = warm._source_stamp(str(tmp_path / "pkg"))
    assert len(before) == 2 and warm._source_stamp(str(tmp_path / "pkg")) == before
    os.utime(tmp_path / "pkg/sub/mod.py", ns=(1, before[str(tmp_path / "pkg/sub/mod.py")] + 10**9))
    assert warm._source_stamp(str(tmp_path / "pkg")) != before
    assert warm._source_stamp()  # the real package: every .py file of src/orchmoe
