"""Docs that run: every code block of README.md and docs/*.md, read from the files (a doc edit is tested).

- ```python blocks run as they are, in a temporary folder, offline (HF_HUB_OFFLINE).
- ```bash blocks are split into commands; each runs in a dry or cheap form in a copy of the workflow that has
  nothing built (a fresh clone): `snakemake ARGS` as `snakemake -n ARGS`; `orchmoe ARGS` is parsed by the real
  argument parser and run when cheap (`cheap`); `dvc repro` / `dvc exp run` with `--dry --force`, the read-only
  dvc commands as written; `make ARGS` as `make -n ARGS`. `VAR=value` lines set variables for later commands.
- The README's inline `code spans` that start with a command run the same way.
- Anything else fails the test until it gets a runner here or an entry in SKIP with its reason, so a new command
  is tested by default. A fenced block without a language that holds a command must say `bash` (or `text`).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..workflow.helpers import BIN, REPO, copy_workflow

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMANDS = ("snakemake", "orchmoe", "dvc", "make", "python", "bash", "git", "pip", "conda", "source", "export")
# orchmoe commands that run for real (a few seconds, no data); the others are parsed by the real parser only.
# `params --config` of a paper config builds every run's model on the meta device (15 s of CPU): parsed only, its
# counting is tested in tests/adapters/test_params_tables.py.
def cheap(argv: list[str]) -> bool:
    return argv[0] == "methods" or (argv[0] == "params" and "--config" not in argv)


@dataclass(frozen=True)
class Skip:
    file: str  # the doc, relative to the repository root
    pattern: str  # a regex searched in a command (block=True: in the whole bash block; a python block: in it)
    reason: str
    block: bool = False
    ahead: bool = False  # for commands a doc may gain (a server recipe): may match nothing yet


SKIP = [
    Skip("docs/engine.md", r"fetch-smollm2", "a measurement recipe: downloads SmolLM2 and trains on CPU for minutes "
                                             "(its train / evaluate commands are covered by tests/training)", block=True),
    Skip("docs/infrastructure.md", r"^(make integration|bash \.ci/slurm/)",
         "starts (or stops) SLURM daemons as root: CI runs it as `make integration`"),
    Skip("README.md", r"^source ", "changes the calling shell (PATH); nothing to check"),
    Skip("README.md", r"^orchmoe warm -- snakemake .*\.\.\.$",
         "`...` stands for any snakemake arguments (tests/training/test_warm.py runs the warm server)"),
    Skip("README.md", r"^orchmoe trace \.\.\. --verify",
         "`...` stands for the trace arguments of the line above (tests/integration re-hashes a real run)"),
    Skip("README.md", r"^orchmoe trace$", "names the command (the block above runs it)"),
    Skip("README.md", r"^orchmoe export RUN --out DIR$", "RUN and DIR are placeholders (docs/serving.md's block "
                                                         "parses export with a real run path)"),
    Skip("README.md", r"^dvc commit -f$", "records the outputs of a built demo; nothing is built here"),
    Skip("README.md", r"^python benchmarks/", "a benchmark of minutes (its output is docs/methods.md's section)"),
    Skip("README.md", r"^dvc (push|pull)$",
         "needs a dvc.lock and built outputs: tests/integration/test_dvc.py pushes, deletes and pulls them"),
    Skip("docs/methods.md", r"ORCHMOE_METHODS=my_pkg", "a user's own method module and config (tests/adapters "
                                                       "cover ORCHMOE_METHODS)", block=True),
    Skip("docs/methods.md", r"class MyRouter", "a template: <name> and the method body are the user's"),
    Skip("docs/architecture.md", r"AdapterConfig\.from_dict\(d\)|make_collator\(tokenizer",
         "an API listing with elided arguments (`...`), not a program"),
    Skip("docs/serving.md", r"from_pretrained", "loads the exports of a trained run (`make demo`, then the commands "
                                                 "above it): tests/serving/test_serving_doc.py runs the recipe"),
    Skip("docs/serving.md", r"vllm serve", "a GPU server (vLLM) over the exports of a trained decoder-only run: "
                                           "not in CI", block=True),
    Skip("docs/serving.md", r"^(python -m vllm|curl|pip) ", "a server's clients, or an install: not in CI",
         ahead=True),
]


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    lang: str
    text: str


FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")


def blocks(path: Path) -> list[Block]:
    """Fenced code blocks of a Markdown file, indentation (list items) removed."""
    out, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang, start = len(m.group(1)), m.group(2), m.group(3), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        out.append(Block(str(path.relative_to(REPO)), start + 1, lang, "\n".join(body)))
        i += 1
    return out


ALL_BLOCKS = [b for doc in DOCS for b in blocks(doc)]


def skip_reason(file: str, text: str, block: bool = False) -> str | None:
    return next((s.reason for s in SKIP if s.file == file and s.block == block and re.search(s.pattern, text, re.M)),
                None)


@dataclass(frozen=True)
class Command:
    file: str
    line: int
    text: str  # the logical line as written (continuations joined, comment removed)


def _without_comment(line: str) -> str:
    """The line up to its shell comment (a # after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def commands(block: Block) -> list[Command]:
    """The logical lines of a bash block: backslash continuations joined, comments and blank lines dropped."""
    out, pending, first = [], "", None
    for n, raw in enumerate(block.text.splitlines(), start=block.line + 1):
        first = first or n
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        text = _without_comment(pending + raw)
        if text:
            out.append(Command(block.file, first, text))
        pending, first = "", None
    return out


BASH = [b for b in ALL_BLOCKS if b.lang in ("bash", "sh", "shell", "console")]
ALL_COMMANDS = [c for b in BASH for c in commands(b)]
PYTHON = [b for b in ALL_BLOCKS if b.lang == "python"]


def inline_commands(path: Path) -> list[Command]:
    """Commands in the prose's `code spans` (the README's own, e.g. `orchmoe params --architecture glm-10b ...`)."""
    text, out = path.read_text(), []
    fenced = {n for b in blocks(path) for n in range(b.line, b.line + b.text.count("\n") + 2)}
    for n, line in enumerate(text.splitlines(), start=1):
        if n not in fenced:
            out += [Command(str(path.relative_to(REPO)), n, m.group(1))
                    for m in re.finditer(rf"`((?:{'|'.join(COMMANDS)}) [^`]+)`", line)]
    return out


README_INLINE = inline_commands(REPO / "README.md")


# -- the fresh-clone copy the commands run in ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A copy of the workflow as a fresh clone has it: git repository, DVC config, nothing built."""
    dest = tmp_path_factory.mktemp("docs") / "repo"
    dest.mkdir()
    copy_workflow(dest)
    shutil.copytree(REPO / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    for name in (".dvcignore", "Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, dest / name)
    (dest / "slurm").symlink_to("workflow/profiles/slurm")
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fresh clone"]):  # `dvc exp run` needs a commit
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)
    for block in BASH:  # start every dry run now, in parallel; the tests below wait for theirs and report
        if not skip_reason(block.file, block.text, block=True):
            variables = {}
            for cmd in commands(block):
                if not skip_reason(cmd.file, cmd.text):
                    with contextlib.suppress(AssertionError):  # a command without a runner fails in its test
                        run_command(cmd, dest, variables, None, start_only=True)
    for block in PYTHON:
        if not skip_reason(block.file, block.text):
            _python(block, dest, start_only=True)
    for cmd in README_INLINE:
        if not skip_reason(cmd.file, cmd.text):
            with contextlib.suppress(AssertionError):
                run_command(cmd, dest, {}, None, start_only=True)
    return dest


def _env(extra: dict) -> dict:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", **extra}


# Started processes, (argv, env, cwd) -> Future: the clone fixture starts every dry run at once (snakemake dry runs
# take no lock; dvc commands take the repository's lock, so they queue on one worker) and each test waits for its
# own; a command two docs name runs once.
_RAN: dict = {}
_POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2))
_DVC_QUEUE = ThreadPoolExecutor(max_workers=1)


def _start(argv: list[str], cwd: Path, env: dict):
    key = (tuple(argv), tuple(sorted(env.items())), str(cwd))
    if key not in _RAN:
        pool = _DVC_QUEUE if Path(argv[0]).name == "dvc" else _POOL
        _RAN[key] = pool.submit(subprocess.run, argv, cwd=cwd, env=_env(env), capture_output=True, text=True,
                                timeout=300)
    return _RAN[key]


def _run(argv: list[str], cwd: Path, env: dict, what: str, start_only: bool = False) -> None:
    future = _start(argv, cwd, env)
    if start_only:
        return
    proc = future.result()
    assert proc.returncode == 0, (f"{what}\nran: {shlex.join(argv)} -> rc {proc.returncode}\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _orchmoe(argv: list[str], cwd: Path, what: str, monkeypatch) -> None:
    from orchmoe.cli import build_parser, main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            build_parser().parse_args(argv)
        except SystemExit as e:
            raise AssertionError(f"{what}\n`orchmoe {shlex.join(argv)}` does not parse:\n{err.getvalue()}") from e
    missing = [a for a in argv if a.startswith("config/") and not (cwd / a).is_file()]
    assert not missing, f"{what}\nno such config file: {missing}"
    if cheap(argv):
        monkeypatch.chdir(cwd)
        with contextlib.redirect_stderr(err):
            rc = main(argv)
        assert rc == 0, f"{what}\n`orchmoe {shlex.join(argv)}` -> rc {rc}\n{err.getvalue()}"


def _dry(argv: list[str]) -> list[str]:
    """The dvc command in a form that runs nothing; one the doc already writes with --dry runs as written. On a
    clone with nothing built, `dvc repro --dry` needs --force: DVC hashes each stage's dependencies for its run cache
    even in a dry run, and those an earlier stage makes do not exist yet (README, DVC)."""
    sub = argv[1:3]
    if (sub[:1] == ["repro"] or sub == ["exp", "run"]) and "--dry" not in argv:
        return argv + ["--dry"] + ([] if {"-f", "--force"} & set(argv) else ["--force"])
    if sub[:1] == ["repro"] or sub == ["exp", "run"]:
        return argv
    if sub[:1] in (["status"], ["dag"]) or sub in (["metrics", "show"], ["plots", "show"], ["params", "diff"]):
        return argv
    raise AssertionError(f"no dry form known for `{shlex.join(argv)}`: add one to _dry or a SKIP entry")


def _split(text: str) -> list[list[str]]:
    """Simple commands of a logical line (split at &&, ;, ||); pipes and redirections are not supported."""
    # synopsis brackets mark optional arguments: `[--out params.csv]` runs as `--out params.csv`
    text = re.sub(r"\[(-[^\]]*)\]", r"\1", text)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split, lexer.commenters = True, "#"
    parts, current = [], []
    for token in lexer:
        if token in ("&&", ";", "||"):
            parts.append(current)
            current = []
        elif set(token) <= set("&|<>"):
            raise AssertionError(f"`{text}`: `{token}` (pipe, redirection, background) has no runner here")
        else:
            current.append(token)
    return [p for p in parts + [current] if p]


def _simple(text: str) -> list[list[str]]:
    with contextlib.suppress(AssertionError):
        return _split(text)
    return []


ASSIGN = re.compile(r"^[A-Za-z_]\w*=")


def run_command(cmd: Command, cwd: Path, variables: dict, monkeypatch, start_only: bool = False) -> None:
    """Run the simple commands of a logical line in their dry forms (start_only: start the subprocesses only)."""
    what = f"{cmd.file}:{cmd.line}: {cmd.text}"
    for argv in _split(cmd.text):
        argv = [re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), a) for a in argv]
        if argv[0] == "export":
            argv = argv[1:]
        env = {}
        while argv and ASSIGN.match(argv[0]):
            key, value = argv.pop(0).split("=", 1)
            env[key] = value
        if not argv:  # a variable for the commands after it
            variables.update(env)
            continue
        if skip_reason(cmd.file, " ".join(argv)):
            continue
        leftover = [a for a in argv if "$" in a]
        assert not leftover, f"{what}\nunset variable or substitution in {leftover}"
        if argv[0] == "snakemake":
            _run([str(BIN / "snakemake"), "-n", *argv[1:]], cwd, env, what, start_only)
        elif argv[0] == "orchmoe":
            assert not env, f"{what}\nenvironment prefixes for orchmoe are not supported here"
            if not start_only:
                _orchmoe(argv[1:], cwd, what, monkeypatch)
        elif argv[0] == "dvc":
            _run([str(BIN / "dvc"), *_dry(argv)[1:]], cwd, env, what, start_only)
        elif argv[0] == "make":
            _run(["make", "-n", *argv[1:]], cwd, env, what, start_only)
        else:
            raise AssertionError(f"{what}\nno runner for `{argv[0]}`: add one in tests/docs/test_docs_run.py or a "
                                 "SKIP entry with the reason it cannot run offline on CPU")


# -- the tests ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block", BASH, ids=[f"{b.file}:{b.line}" for b in BASH])
def test_shell_commands_run_dry(block, clone, monkeypatch):
    """One case per bash block: its variables carry from line to line."""
    if skip_reason(block.file, block.text, block=True):
        pytest.skip(skip_reason(block.file, block.text, block=True))
    variables, ran = {}, 0
    for cmd in commands(block):
        if skip_reason(cmd.file, cmd.text):
            continue
        run_command(cmd, clone, variables, monkeypatch)
        ran += 1
    if ran == 0:
        pytest.skip("every command of this block is on the skip list")


@pytest.mark.parametrize("cmd", README_INLINE, ids=[f"{c.file}:{c.line}:{c.text}" for c in README_INLINE])
def test_readme_inline_commands_run_dry(cmd, clone, monkeypatch):
    if skip_reason(cmd.file, cmd.text):
        pytest.skip(skip_reason(cmd.file, cmd.text))
    run_command(cmd, clone, {}, monkeypatch)


def _python(block: Block, clone: Path, start_only: bool = False) -> None:
    """Run a python block as a script in a folder of its own (it may write files, e.g. `ckpt`)."""
    where = clone.parent / f"python-{Path(block.file).stem}-{block.line}"
    where.mkdir(exist_ok=True)
    (where / "snippet.py").write_text(block.text + "\n")
    _run([sys.executable, "snippet.py"], where, {"PYTHONPATH": str(REPO / "src")}, f"{block.file}:{block.line}",
         start_only)


@pytest.mark.parametrize("block", PYTHON, ids=[f"{b.file}:{b.line}" for b in PYTHON])
def test_python_blocks_run(block, clone):
    if skip_reason(block.file, block.text):
        pytest.skip(skip_reason(block.file, block.text))
    _python(block, clone)


def test_the_readme_has_a_python_snippet_and_commands():
    # the extraction itself can fail silently (a fence style it does not read): the README must yield both
    assert any(b.file == "README.md" for b in PYTHON)
    assert sum(c.file == "README.md" for c in ALL_COMMANDS) >= 10


def test_every_skip_entry_still_matches():
    texts = ([(c.file, c.text) for c in ALL_COMMANDS + README_INLINE] + [(b.file, b.text) for b in PYTHON + BASH]
             + [(c.file, " ".join(argv)) for c in ALL_COMMANDS + README_INLINE for argv in _simple(c.text)])
    stale = [s for s in SKIP if not s.ahead and not any(f == s.file and re.search(s.pattern, t, re.M)
                                                        for f, t in texts)]
    assert not stale, f"SKIP entries that match nothing (remove them): {stale}"


def test_command_blocks_say_bash():
    starts = re.compile(rf"^\s*(\$ )?({'|'.join(COMMANDS)})\s")
    unlabeled = [f"{b.file}:{b.line}" for b in ALL_BLOCKS if not b.lang and any(starts.match(line)
                                                                                 for line in b.text.splitlines())]
    assert not unlabeled, f"fenced blocks holding commands without a language (say ```bash, or ```text): {unlabeled}"
