"""The `seqlab` command: `seqlab demo`, `seqlab version`, and the applications."""

from __future__ import annotations

import argparse
import sys

import seqlab


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqlab", description="Keras-style sequence models on PyTorch.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="show the layers' weight shapes, parameter tables and math, computed live")
    commands.add_parser("version", help="print the versions of seqlab and torch")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from seqlab.demo import main as demo

        demo()
    elif args.command == "version":
        import torch

        print(f"seqlab {seqlab.__version__} (torch {torch.__version__})")
    else:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
