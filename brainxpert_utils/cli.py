"""The ``brainxpert`` command: a thin layer over functions the notebooks can call too.

Each sub-command lives in the module that owns the work; that module exposes
``register_cli(subparsers)`` which adds its parser and sets ``func`` to a handler taking the parsed
arguments and returning an exit code. Modules listed here must not import TensorFlow at import time.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module (inside brainxpert_utils) -> sub-commands it registers
COMMAND_MODULES = ("datasets", "scan", "notebooks", "course", "grading")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainxpert",
        description="BrainXpert course tools: data, notebooks, course runs, grading.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"brainxpert_utils.{name}")
        except ImportError as exc:  # a module still being written must not break the others
            print(f"warning: brainxpert_utils.{name} unavailable: {exc}", file=sys.stderr)
            continue
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from brainxpert_utils.errors import BrainXpertError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrainXpertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
