"""The `seqlab` command.

`seqlab demo`, `seqlab version`, `seqlab summary MODEL_DIR`, and one
subcommand group per application. Each command module adds its own parser
through `add_parser(subcommands)` and sets `handler` to a function taking the
parsed arguments and returning the exit status, so this file stays a list.
It is the only module that names the applications; what their commands
share (command groups, options derived from settings) is `seqlab.commandline`.
"""

from __future__ import annotations

import argparse
import sys

import torch

from seqlab.apps import charlm, embeddings, sentiment, tag, translate
from seqlab.commandline import print_help, run_handler
from seqlab.demo import main as demo
from seqlab.interop import commands as interop_commands
from seqlab.saving import load_model
from seqlab.version import __version__

# The modules that define more subcommands, each with add_parser(subcommands), imported by name
# so that the import contracts (pyproject.toml) see that this is the one module naming the apps.
COMMAND_GROUPS = (sentiment, charlm, translate, embeddings, tag, interop_commands)


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
    for group in COMMAND_GROUPS:
        group.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        return print_help(parser)
    return run_handler(args)


def _demo(args: argparse.Namespace) -> int:
    demo()
    return 0


def _version(args: argparse.Namespace) -> int:
    print(f"seqlab {__version__} (torch {torch.__version__})")
    return 0


def _summary(args: argparse.Namespace) -> int:
    try:
        model = load_model(args.model_dir, compile=False)
    except (FileNotFoundError, ValueError) as error:
        print(f"seqlab summary: {error}", file=sys.stderr)
        return 1
    model.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
