"""Command-line helpers the `seqlab` subcommands share: command groups, and options derived from a dataclass.

An application's settings dataclass is the one place each option is written:
its name (`--batch-size` for the field `batch_size`), its type (from the
annotation: `int | None` reads an int, `bool` gives `--x/--no-x`), its
default and its help, given with `setting(default, "help", ...)`. The help
shown is that text followed by "(default ...)", written from the default
itself, so a help string never repeats a default by hand.

    >>> @dataclass
    ... class Settings:
    ...     units: int = setting(64, "units per layer")
    >>> parser = argparse.ArgumentParser()
    >>> add_options(parser, Settings)          # --units N: "units per layer (default 64)"
    >>> parser.parse_args([]).units is None    # not given: None, so a preset can still fill it
    True

With `keep_defaults=True` the parsed value of an option not given is the
field's default instead of None (for commands without presets).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import types
import typing
from typing import Any, Callable

__all__ = ["add_command_group", "add_options", "describe_default", "json_line", "print_help", "read_lines",
           "reports_errors", "run_alone", "run_handler", "setting"]


def setting(default: Any = dataclasses.MISSING, help: str = "", *, choices: Any = None, flags: tuple[str, ...] = (),
            metavar: str | None = None, default_text: str | None = None, command_line: bool = True,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring).

    `choices`: the allowed values (a dict's keys count); `flags`: more
    spellings (`("--tbptt",)`); `default_text`: how help names the default
    when its value does not say it ("all", "torch's"); `command_line=False`:
    a setting with no option.
    """
    metadata = {"help": help, "choices": choices, "flags": flags, "metavar": metavar, "default_text": default_text,
                "command_line": command_line}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings: type,
                names: typing.Iterable[str] | None = None, *, keep_defaults: bool = False) -> None:
    """Add an option for each field of the dataclass `settings` (or those in `names`, in that order)."""
    fields = {field.name: field for field in dataclasses.fields(settings)}
    hints = typing.get_type_hints(settings)
    for name in (names if names is not None else fields):
        field = fields[name]
        if not field.metadata.get("command_line", True):
            continue
        parser.add_argument(*_flags(field), **_argument(field, hints[name], keep_defaults))


def describe_default(value: Any) -> str:
    """How help text writes a default: yes/no for booleans, 0.001 for 1e-3, the value otherwise."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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


def run_handler(args: argparse.Namespace) -> int:
    """Run a parsed command's handler; a reader that leaves (`seqlab ... | head -1`) ends it quietly, status 0.

    stdout is pointed at /dev/null so that the interpreter's last flush does
    not print a `BrokenPipeError` of its own.
    """
    try:
        return args.handler(args) or 0
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


Handler = Callable[[argparse.Namespace], int]


def reports_errors(command: str) -> Callable[[Handler], Handler]:
    """A handler that prints what went wrong (bad input, missing data or model) as one line
    `seqlab COMMAND: ...` on stderr and returns 1; a reader that leaves is `run_handler`'s to end."""
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except BrokenPipeError:
                raise
            except (ValueError, OSError, ImportError) as error:
                print(f"seqlab {command}: {error}", file=sys.stderr)
                return 1

        return run

    return decorate


def json_line(value: Any, *, non_finite_as_null: bool = False) -> str:
    """`value` as one line of strict JSON (no NaN or Infinity, which JSON readers reject), text kept as typed.

    A non-finite number is an error, or, with `non_finite_as_null` (a training
    run's history, where a diverged epoch's loss is NaN), written as `null`.
    """
    if non_finite_as_null:
        value = _non_finite_to_none(value)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError("the answer holds NaN or infinity, which JSON cannot carry: the model's scores are not "
                         "finite for this input (check the model with `seqlab summary`, or retrain it).") from None


def _non_finite_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _non_finite_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_non_finite_to_none(item) for item in value]
    return value


def run_alone(add_parser: typing.Callable[[argparse._SubParsersAction], Any], name: str,
              argv: list[str] | None = None, prog: str = "seqlab") -> int:
    """Run one command group on its own (`python -m seqlab.apps.charlm train ...` is `seqlab charlm train ...`)."""
    parser = argparse.ArgumentParser(prog=prog)
    add_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args([name, *(sys.argv[1:] if argv is None else argv)])
    return run_handler(args)


def read_lines(path: str | None) -> list[str]:
    """One text per line of `path` (UTF-8; stdin for None or "-").

    A line ends at "\n" or "\r\n" only: U+0085, U+2028, form feeds and the other
    characters `str.splitlines` also breaks at belong to the text (a review may
    hold them), so each line gives exactly one prediction.
    """
    if path in (None, "-"):
        stream = getattr(sys.stdin, "buffer", None)
        text = stream.read().decode("utf-8-sig") if stream is not None else sys.stdin.read()
    else:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8-sig")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.removesuffix("\r") for line in lines]


# ------------------------------------------------------------------ derivation
def _flags(field: dataclasses.Field) -> list[str]:
    return ["--" + field.name.replace("_", "-"), *field.metadata.get("flags", ())]


def _argument(field: dataclasses.Field, annotation: Any, keep_defaults: bool) -> dict[str, Any]:
    kind = _value_type(annotation, field.name)
    default = field.default if field.default is not dataclasses.MISSING else None
    argument: dict[str, Any] = {"default": default if keep_defaults else None, "help": _help(field, default)}
    if kind is bool:
        argument["action"] = argparse.BooleanOptionalAction
        return argument
    choices = field.metadata.get("choices")
    if choices is not None:
        argument["choices"] = sorted(choices) if isinstance(choices, dict) else list(choices)
    if kind is not str:
        argument["type"] = kind
    if field.metadata.get("metavar"):
        argument["metavar"] = field.metadata["metavar"]
    return argument


def _help(field: dataclasses.Field, default: Any) -> str:
    text = field.metadata.get("help", "")
    described = field.metadata.get("default_text")
    if described is None and default is not None:
        described = describe_default(default)
    if described is None or described == "":
        return text
    return f"{text} (default {described})" if text else f"default {described}"


def _value_type(annotation: Any, name: str) -> type:
    """`int` for `int` or `int | None`; the one non-None member of an optional type."""
    members = [member for member in typing.get_args(annotation) if member is not type(None)] \
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else [annotation]
    if len(members) != 1 or members[0] not in (bool, int, float, str):
        raise TypeError(f"setting {name!r} has type {annotation!r}: a command-line option needs bool, int, float "
                        "or str (optionally | None); give it command_line=False and parse it yourself.")
    return members[0]
