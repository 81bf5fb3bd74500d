"""Options derived from a settings dataclass (`seqlab.commandline`), and the apps' commands built from them."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from seqlab.apps import charlm, sentiment, translate
from seqlab.cli import build_parser
from seqlab.commandline import add_options, describe_default, setting


@dataclass
class Example:
    units: int = setting(64, "units per layer")
    rate: float | None = setting(None, "learning rate", default_text="the optimizer's")
    cell: str = setting("lstm", "recurrent cell", choices={"lstm": 1, "gru": 2})
    stateful: bool = setting(False, "carry the state", flags=("--tbptt",))
    path: str | None = setting(None, "a file", metavar="PATH")
    hidden: int = setting(3, "not an option", command_line=False)


def parser_of(keep_defaults: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_options(parser, Example, keep_defaults=keep_defaults)
    return parser


def test_name_type_default_and_help_come_from_the_field():
    parser = parser_of()
    args = parser.parse_args(["--units", "8", "--rate", "0.5", "--cell", "gru", "--tbptt", "--path", "x.txt"])
    assert (args.units, args.rate, args.cell, args.stateful, args.path) == (8, 0.5, "gru", True, "x.txt")
    assert not hasattr(args, "hidden")
    assert vars(parser.parse_args([])) == dict(units=None, rate=None, cell=None, stateful=None, path=None)
    assert vars(parser_of(keep_defaults=True).parse_args(["--no-stateful"])) == dict(
        units=64, rate=None, cell="lstm", stateful=False, path=None)
    helps = {action.dest: action.help for action in parser._actions}
    assert helps["units"] == "units per layer (default 64)"
    assert helps["rate"] == "learning rate (default the optimizer's)"
    assert helps["stateful"] == "carry the state (default no)" and helps["path"] == "a file"
    with pytest.raises(SystemExit):
        parser.parse_args(["--cell", "rnn"])
    assert (describe_default(1e-3), describe_default(True), describe_default(10_000)) == ("0.001", "yes", "10000")


def test_a_field_of_another_type_needs_its_own_parsing():
    @dataclass
    class Odd:
        labels: tuple = setting((), "two labels")

    with pytest.raises(TypeError, match="command_line=False"):
        add_options(argparse.ArgumentParser(), Odd)


def _train_options(command: str) -> dict[str, argparse.Action]:
    parser = build_parser()
    app = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    group = next(a for a in app._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest: action for action in group._name_parser_map["train"]._actions}


@pytest.mark.parametrize("command, settings", [("charlm", charlm.Settings), ("sentiment", sentiment.Recipe),
                                               ("translate", translate.Settings)])
def test_every_setting_is_an_option_whose_help_shows_the_dataclass_default(command, settings):
    options = _train_options(command)
    for field in dataclasses.fields(settings):
        if not field.metadata.get("command_line", True):  # recorded by the run itself, such as a checksum
            assert field.name not in options
            continue
        help_text = options[field.name].help
        assert help_text.startswith(field.metadata["help"]), field.name
        if field.default is not None and field.metadata.get("default_text") is None:
            assert help_text.endswith(f"(default {describe_default(field.default)})"), (field.name, help_text)


def test_options_left_out_take_the_preset_then_the_dataclass_default():
    parser = build_parser()
    args = parser.parse_args(["charlm", "train", "--preset", "best", "--units", "32"])
    settings = charlm.settings_from_args(args)
    assert (settings.units, settings.seq_len, settings.embedding_dim) == (32, 100, 64)
    assert charlm.settings_from_args(parser.parse_args(["charlm", "train"])) == charlm.Settings()
    args = parser.parse_args(["translate", "train", "--pairs", "fra-eng", "--model", "m", "--attention", "none"])
    assert (args.out, args.units, args.projection_dtype) == ("m", None, None)  # None: not given (--resume checks)
    settings = translate.run_settings(args.pairs, units=args.units, attention=args.attention)
    assert (settings["units"], settings["projection_dtype"], settings["attention"], settings["pairs"]) == (
        256, None, None, "fra-eng")
