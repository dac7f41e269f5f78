"""`orchmoe <command>`: the one entry point that workflow rules call.

Each area of the package registers its own subcommands (module-level `register(subparsers)`), so
adding a command never touches this file. Handlers import their heavy dependencies lazily.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from orchmoe import warm
from orchmoe.errors import OrchmoeError

AREAS = (
    "orchmoe.adapters.cli",
    "orchmoe.data.cli",
    "orchmoe.models.cli",
    "orchmoe.training.cli",
    "orchmoe.report.cli",
    "orchmoe.serving.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchmoe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in AREAS:  # a broken area fails loudly: a missing command would be worse than a traceback
        importlib.import_module(name).register(sub)
    w = sub.add_parser("warm", help="run a command (snakemake, dvc repro) whose orchmoe jobs start warm: torch and "
                                    "transformers imported once, each job a fork (orchmoe/warm.py)")
    w.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    w.set_defaults(func=lambda args: warm.run_warm(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd, main))
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # a command-line job: under `orchmoe warm`, run it in the warm server's fork
        code = warm.delegate(sys.argv[1:])
        if code is not None:
            return code
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OrchmoeError as e:
        print(f"orchmoe {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable input, read-only output folder, full disk: one line naming the path
        where = f"{e.filename}: " if e.filename else ""
        print(f"orchmoe {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
