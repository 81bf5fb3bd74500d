"""The `seqlab` command.

`seqlab demo`, `seqlab version`, `seqlab summary MODEL_DIR`, and one
subcommand group per application. Each command module adds its own parser
through `add_parser(subcommands)` and sets `handler` to a function taking the
parsed arguments and returning the exit status, so this file stays a list.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import seqlab

# Modules that define more subcommands (each has add_parser(subcommands)).
COMMAND_MODULES: list[str] = [
    "seqlab.apps.sentiment",
    "seqlab.apps.charlm",
    "seqlab.apps.translate",
    "seqlab.interop.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqlab", description="Keras-style sequence models on PyTorch.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="show the layers' weight shapes, parameter tables and math, computed live")
    demo.set_defaults(handler=_demo)
    version = commands.add_parser("version", help="print the versions of seqlab and torch")
    version.set_defaults(handler=_version)
    summary = commands.add_parser("summary", help="print the summary table of a saved model")
    summary.add_argument("model_dir", help="a directory written by model.save() or a checkpoint")
    summary.set_defaults(handler=_summary)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(commands)
    return parser


def add_command_group(subcommands: argparse._SubParsersAction, name: str, *, help: str, description: str,
                      dest: str, metavar: str = "COMMAND") -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A subcommand `name` with subcommands of its own: `(its parser, the group to add them to)`.

    Given without one of them (`seqlab charlm`), it prints its help to stderr and exits with 2.
    """
    parser = subcommands.add_parser(name, help=help, description=description)
    parser.set_defaults(handler=lambda args: print_help(parser))
    return parser, parser.add_subparsers(dest=dest, metavar=metavar)


def print_help(parser: argparse.ArgumentParser) -> int:
    """What a command given without its subcommand does: its help on stderr, exit status 2."""
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        return print_help(parser)
    return handler(args) or 0


def _demo(args: argparse.Namespace) -> int:
    from seqlab.demo import main as demo

    demo()
    return 0


def _version(args: argparse.Namespace) -> int:
    import torch

    print(f"seqlab {seqlab.__version__} (torch {torch.__version__})")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from seqlab.saving import load_model

    try:
        model = load_model(args.model_dir, compile=False)
    except (FileNotFoundError, ValueError) as error:
        print(f"seqlab summary: {error}", file=sys.stderr)
        return 1
    model.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
