"""`seqlab sentiment train | evaluate | predict`: the sentiment classifier's commands.

`train`'s model options are derived from `Recipe` (name, type, default and
help in one place); options given beside `--preset` override it. Progress
and reports go to stderr, predictions to stdout, each error as one line.

    $ seqlab sentiment train --preset best --out runs/imdb
    $ seqlab sentiment predict --model runs/imdb "A moving, beautifully acted film."
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from seqlab.apps.run_directory import RunDirectory, add_run_options, interrupted_hint, record_of
from seqlab.apps.sentiment.data import DataSource
from seqlab.apps.sentiment.evaluation import Prediction
from seqlab.apps.sentiment.model import load
from seqlab.apps.sentiment.recipe import PRESETS, Recipe
from seqlab.apps.sentiment.run import DATA_FIELDS, evaluate, resume_given, train
from seqlab.commandline import add_command_group, add_options, json_line, read_lines, run_alone
from seqlab.training import distributed

__all__ = ["add_parser", "main"]

# The order `seqlab sentiment train --help` lists the recipe's options in.
TRAIN_OPTIONS = ("arch", "cell", "bidirectional", "layers", "units", "heads", "embedding_dim", "dense_units",
                 "pooling", "max_len", "tokenizer", "vocab_size", "embeddings", "freeze_embeddings", "ngrams", "mask",
                 "bucket", "shuffle", "dropout", "epochs", "batch_size", "lr", "patience", "max_minutes", "seed")


def add_parser(subcommands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `sentiment` with `train`, `evaluate` and `predict` to the `seqlab` command."""
    parser, commands = add_command_group(subcommands, "sentiment", dest="sentiment_command",
                                         help="sentiment classification: train, evaluate, predict",
                                         description="Sentiment classification: train a recurrent classifier on "
                                                     "labeled texts, evaluate it, predict.")
    _add_train(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    return parser


def _add_data_options(parser: argparse.ArgumentParser, default_dataset: str | None) -> None:
    # Each defaults to None, "not given" (a resumed run keeps its data; _source_from_args fills the defaults).
    # --labels is one string, NEG,POS, split in _source_from_args.
    parser.add_argument("--dataset",
                        help=_help_of("dataset") + (f" (default {default_dataset})" if default_dataset else
                                                    " (default: the test split of the data the model was trained on)"))
    add_options(parser, DataSource, ("split", "text_column", "label_column"))
    parser.add_argument("--labels", metavar="NEG,POS", help=_help_of("labels"))
    add_options(parser, DataSource, ("delimiter", "quoting", "decode_errors"))


def _help_of(name: str) -> str:
    return next(field for field in dataclasses.fields(DataSource) if field.name == name).metadata["help"]


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a sentiment classifier, test it and save it",
                                 description="Train, test and save a sentiment classifier. Options given "
                                             "beside --preset override it. Progress goes to stderr.")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="book-bilstm / book-bisimplernn-100: the tutorial's recipes; best: the best measured; "
                             "transformer: the Keras example's transformer")
    _add_data_options(parser, "imdb")
    add_options(parser, Recipe, TRAIN_OPTIONS)
    option = parser.add_argument
    option("--threads", type=int, help="torch CPU threads (default: torch's; 1 is fastest on a busy 2-core CPU)")
    option("--out", default="runs/sentiment", help="directory to save the model in, with the run's checkpoints, "
                                                   "log.csv and settings.json (default runs/sentiment)")
    add_run_options(parser)
    option("--verbose", type=int, choices=(0, 1, 2), default=None,
           help="0 silent, 1 progress bars, 2 one line per epoch (default: bars on a terminal)")
    parser.set_defaults(handler=_train_command)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="accuracy, precision, recall, F1 and confusion matrix",
                                 description="Score a saved model on a test set (a CSV: all its rows).")
    parser.add_argument("--model", required=True, help="a directory written by `seqlab sentiment train --out`")
    _add_data_options(parser, None)
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    parser.set_defaults(handler=_evaluate_command)


def _add_predict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("predict", help="label texts: from arguments, a file or stdin (one per line)",
                                 description="Print label, probability of that label and text, one line per "
                                             "text. Without texts or --file, read stdin.")
    parser.add_argument("--model", required=True, help="a directory written by `seqlab sentiment train --out`")
    parser.add_argument("texts", nargs="*", help="texts to label")
    parser.add_argument("--file", help="a UTF-8 file with one text per line ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=_predict_command)


def _data_given(args: argparse.Namespace) -> dict[str, Any]:
    """The data options given on the command line, a CSV by its absolute path (as settings.json has it)."""
    given = {name: getattr(args, name) for name in DATA_FIELDS if getattr(args, name, None) is not None}
    if "labels" in given:
        given["labels"] = [v.strip() for v in given["labels"].split(",")]
    if given.get("dataset", "").startswith("csv:"):
        given["dataset"] = f"csv:{Path(given['dataset'][4:]).resolve()}"
    return given


def _source_from_args(args: argparse.Namespace) -> DataSource:
    given = _data_given(args)
    dataset = getattr(args, "dataset", None) or "imdb"
    DataSource.refuse_inapplicable(dataset, given)  # also an option given at its default value
    return DataSource(**{**given, "dataset": dataset,
                         "labels": tuple(given["labels"]) if "labels" in given else None})


def _train_command(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(Recipe)}
    options = {name: value for name, value in vars(args).items() if name in names}
    try:
        if args.resume:
            given = resume_given(RunDirectory(args.out, model_dir=Path(args.out) / "model"), args.preset, options,
                                 _data_given(args))
            result = train(None, out=args.out, resume=True, given=given, command=_command_line(args),
                           threads=args.threads, verbose="auto" if args.verbose is None else args.verbose)
        else:
            result = train(_source_from_args(args), preset=args.preset, out=args.out, threads=args.threads,
                           overwrite=args.overwrite, command=_command_line(args),
                           verbose="auto" if args.verbose is None else args.verbose, **options)
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"seqlab sentiment train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted_hint("sentiment", args.out), file=sys.stderr)
        return 130
    if args.json:
        distributed.print_main(json_line({"out": str(args.out), "model": str(Path(args.out) / "model"),
                                          **result.summary()}, non_finite_as_null=True))
    else:
        distributed.print_main(result.test.report())
        distributed.print_main(result.report())
    distributed.print_main(f"Saved {Path(args.out) / 'model'}. Predict with: seqlab sentiment predict --model "
                           f"{args.out} \"text\"", file=sys.stderr)
    return 0


def _command_line(args: argparse.Namespace) -> str:
    return record_of(["seqlab", "sentiment", "train"], args, skip=("sentiment_command",))


def _evaluate_command(args: argparse.Namespace) -> int:
    try:
        if not args.dataset and _data_given(args):
            flags = ", ".join("--" + name.replace("_", "-") for name in _data_given(args))
            one = len(_data_given(args)) == 1
            raise ValueError(f"{flags} {'describes' if one else 'describe'} the data given with --dataset; without "
                             "--dataset the model is scored on the data it was trained on. Add --dataset, or drop "
                             f"{'it' if one else 'them'}.")
        source = _source_from_args(args) if args.dataset else None
        scores = evaluate(args.model, source)
        report = json_line(scores.to_dict()) if args.json else scores.report()
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"seqlab sentiment evaluate: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0


def _predict_command(args: argparse.Namespace) -> int:
    try:
        texts = list(args.texts) + (read_lines(args.file) if args.file is not None or not args.texts else [])
        predictions = load(args.model).predict(texts)
        lines = [json_line(prediction.to_dict()) if args.json else _prediction_line(prediction)
                 for prediction in predictions]
    except (ValueError, OSError, ImportError) as error:
        print(f"seqlab sentiment predict: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def _prediction_line(prediction: Prediction) -> str:
    """`label<TAB>probability<TAB>text`, and the note (such as truncation) in brackets."""
    note = f"  [{prediction.note}]" if prediction.note else ""
    return f"{prediction.label}\t{prediction.probability:.4f}\t{prediction.text}{note}"


def main(argv: list[str] | None = None) -> int:
    """`python -m seqlab.apps.sentiment ...`: the `seqlab sentiment` command on its own."""
    return run_alone(add_parser, "sentiment", argv, prog="seqlab")
