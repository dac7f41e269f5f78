"""A warm process for the many short `orchmoe` jobs of a DAG: `orchmoe warm -- snakemake ...` (or `-- dvc repro`).

A CPU job of the demo or of a miniature paper DAG computes for about a second but spends three or more importing
torch and transformers, and a DAG runs hundreds of them. `orchmoe warm` imports them once in a server process, runs
the given command with ORCHMOE_WARM=<socket> in its environment, and stops the server when the command ends. Each
`orchmoe` job started meanwhile (by Snakemake, DVC or a shell) sends its argv, working directory, environment and
stdin/stdout/stderr to the server, which forks a child that runs exactly the command line the job would have run:
same code (`orchmoe.cli.main`), same files, same seeds, its output into the job's own log, its exit code returned.
The job process stays alive until the child ends; if the job is killed, the child dies with it (it watches the
connection), so a killed job leaves what a killed process leaves: nothing that looks complete.

A job runs cold, as without the server, when the socket is missing or refuses, inside a SLURM job (it must run in
its own allocation), when its environment differs from the server's in a variable read at import time (prefixes
in IMPORT_TIME_ENV), or when a file of the package changed since the server imported it (an edit during a run).
tests/training/test_warm.py checks that a warm and a cold run write identical outputs.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import traceback

ENV = "ORCHMOE_WARM"
IMPORT_TIME_ENV = ("ORCHMOE_", "HF_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "MPLBACKEND", "PYTHON")
PRELOAD = ("torch", "transformers", "orchmoe.training.trainer", "orchmoe.training.evaluate", "orchmoe.training.adapt",
           "orchmoe.models.loading", "orchmoe.metrics.superni", "pandas", "matplotlib.pyplot", "seaborn")
_in_worker = False  # set in a forked child: its own `main` must run the command, not delegate it again


def in_worker() -> bool:
    """True in a job that runs in a fork of the warm server (recorded in run.json)."""
    return _in_worker


def _import_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV) and k != ENV}


def _source_stamp(root: str | None = None) -> dict[str, int]:
    """mtime of every file of the package: a job must not run code that changed on disk since the server's imports."""
    root = root or os.path.dirname(os.path.abspath(__file__))
    stamp = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                stamp[path] = os.stat(path).st_mtime_ns
    return stamp


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


# ---- the job side -------------------------------------------------------------------------------------------------

def delegate(argv: list[str]) -> int | None:
    """Run `orchmoe argv` in the warm server; None when it cannot (the caller then runs it here, cold)."""
    path = os.environ.get(ENV)
    if not path or _in_worker or os.environ.get("SLURM_JOB_ID") or argv[:1] == ["warm"]:
        return None
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        body = json.dumps({"argv0": sys.argv[0], "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        socket.send_fds(conn, [len(body).to_bytes(8, "big")], [0, 1, 2])
        conn.sendall(body)
        if _recv_exact(conn, 1) != b"+":  # the server declined (another import-time environment): run cold
            conn.close()
            return None
    except OSError:
        return None
    try:
        code = _recv_exact(conn, 4)
    except ConnectionError:  # the child died without reporting (killed, out of memory)
        print(f"orchmoe: the warm child running `orchmoe {' '.join(argv[:1])}` ended without an exit code",
              file=sys.stderr)
        return 1
    return int.from_bytes(code, "big", signed=True)


# ---- the server side ----------------------------------------------------------------------------------------------

def _child(conn: socket.socket, fds: list[int], request: dict, run) -> None:
    """In the forked child: become the job (fds, cwd, env, argv), run it, report the exit code, exit."""
    global _in_worker
    _in_worker = True
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server ignores it; the job's subprocesses need it back
    sys.stdout.flush(), sys.stderr.flush()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [request["argv0"], *request["argv"]]
    if "torch" in sys.modules and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    import threading

    def watch():  # the job process holds the other end: when it is gone (killed), so is this child
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        os._exit(137)

    threading.Thread(target=watch, daemon=True).start()
    try:
        code = int(run(request["argv"]) or 0)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:  # as a cold run would: the traceback into the job's log, exit code 1
        traceback.print_exc()
        code = 1
    sys.stdout.flush(), sys.stderr.flush()
    try:
        conn.sendall(code.to_bytes(4, "big", signed=True))
    except OSError:
        pass
    os._exit(code)


def serve(path: str, run, ready_fd: int | None = None) -> None:
    """Accept jobs on the unix socket `path` forever; `run(argv) -> int` is `orchmoe.cli.main`."""
    own = _import_env(os.environ)  # before the imports: torch sets variables of its own (KMP_*, TORCHINDUCTOR_*)
    stamp = _source_stamp()
    for name in PRELOAD:  # best effort: a module that fails to import here fails in the job, as it would cold
        try:
            __import__(name)
        except Exception:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    if ready_fd is not None:
        os.write(ready_fd, b"ready")
        os.close(ready_fd)
    parent = os.getppid()
    server.settimeout(1.0)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if os.getppid() != parent:  # `orchmoe warm` itself was killed: nothing will stop this server but itself
                os._exit(0)
            continue
        conn.settimeout(None)
        fds = []
        try:
            header, fds, _, _ = socket.recv_fds(conn, 8, 3)
            request = json.loads(_recv_exact(conn, int.from_bytes(header, "big")))
            # declined (the job runs cold): another import-time environment, or the package edited since start
            if len(fds) != 3 or _import_env(request["env"]) != own or _source_stamp() != stamp:
                conn.sendall(b"-")
                raise ConnectionError("declined")
            conn.sendall(b"+")
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            continue
        if os.fork() == 0:
            server.close()
            _child(conn, fds, request, run)
        for fd in fds:
            os.close(fd)
        conn.close()


def run_warm(command: list[str], run) -> int:
    """`orchmoe warm -- COMMAND...`: start the server, run COMMAND with ORCHMOE_WARM set, stop the server."""
    import shutil
    import subprocess
    import tempfile

    if not command:
        print("orchmoe warm: error: no command given (usage: orchmoe warm -- snakemake ...)", file=sys.stderr)
        return 2
    if shutil.which(command[0]) is None:  # before the server starts: nothing to stop, one line to read
        print(f"orchmoe warm: error: {command[0]}: command not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="orchmoe-warm-") as tmp:
        path = os.path.join(tmp, "socket")
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the server: its own process, so the command's process never forks with threads about
            os.close(ready_r)
            try:
                serve(path, run, ready_w)
            finally:
                os._exit(1)
        os.close(ready_w)
        os.read(ready_r, 5)  # the server has imported everything and listens (or died: empty read)
        os.close(ready_r)
        try:
            return subprocess.call(command, env={**os.environ, ENV: path})
        except OSError as e:
            print(f"orchmoe warm: error: {command[0]}: {e.strerror}", file=sys.stderr)
            return 2
        finally:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
