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
import json
import sys

from seqlab.apps.sentiment.data import DataSource
from seqlab.apps.sentiment.model import load
from seqlab.apps.sentiment.recipe import PRESETS, Recipe
from seqlab.apps.sentiment.run import evaluate, train
from seqlab.commandline import add_command_group, add_options, run_alone
from seqlab.training import distributed

__all__ = ["add_parser", "main"]

# The order `seqlab sentiment train --help` lists the recipe's options in.
TRAIN_OPTIONS = ("arch", "cell", "bidirectional", "layers", "units", "heads", "embedding_dim", "dense_units",
                 "pooling", "max_len", "tokenizer", "vocab_size", "ngrams", "mask", "bucket", "shuffle", "dropout",
                 "epochs", "batch_size", "lr", "patience", "time_limit", "seed")


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
    # --dataset's default depends on the command; --labels is one string, NEG,POS, split in _source_from_args.
    parser.add_argument("--dataset", default=default_dataset,
                        help=_help_of("dataset") + (f" (default {default_dataset})" if default_dataset else
                                                    " (default: the test split of the data the model was trained on)"))
    add_options(parser, DataSource, ("split", "text_column", "label_column"), keep_defaults=True)
    parser.add_argument("--labels", metavar="NEG,POS", help=_help_of("labels"))
    add_options(parser, DataSource, ("delimiter",), keep_defaults=True)


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
    option("--out", default="runs/sentiment", help="directory to save the model in (default runs/sentiment)")
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


def _source_from_args(args: argparse.Namespace) -> DataSource:
    labels = tuple(v.strip() for v in args.labels.split(",")) if args.labels else None
    return DataSource(args.dataset, args.split, args.text_column, args.label_column, labels, args.delimiter)


def _train_command(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(Recipe)}
    options = {name: value for name, value in vars(args).items() if name in names}
    try:
        result = train(_source_from_args(args), preset=args.preset, out=args.out, threads=args.threads,
                       verbose="auto" if args.verbose is None else args.verbose, **options)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        print(f"seqlab sentiment train: {error}", file=sys.stderr)
        return 1
    distributed.print_main(result.test.report(), file=sys.stderr)
    distributed.print_main(result.report(), file=sys.stderr)
    distributed.print_main(f"Saved {result.directory}. Predict with: seqlab sentiment predict --model "
                           f"{result.directory} \"text\"", file=sys.stderr)
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    try:
        source = _source_from_args(args) if args.dataset else None
        scores = evaluate(args.model, source)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"seqlab sentiment evaluate: {error}", file=sys.stderr)
        return 1
    print(json.dumps(scores.to_dict()) if args.json else scores.report())
    return 0


def _predict_command(args: argparse.Namespace) -> int:
    try:
        texts = list(args.texts) + (read_lines(args.file) if args.file is not None or not args.texts else [])
        predictions = load(args.model).predict(texts)
    except (ValueError, OSError, ImportError) as error:
        print(f"seqlab sentiment predict: {error}", file=sys.stderr)
        return 1
    for prediction in predictions:
        if args.json:
            print(json.dumps(prediction.to_dict(), ensure_ascii=False))
        else:
            note = f"  [{prediction.note}]" if prediction.note else ""
            print(f"{prediction.label}\t{prediction.probability:.4f}\t{prediction.text}{note}")
    return 0


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




def main(argv: list[str] | None = None) -> int:
    """`python -m seqlab.apps.sentiment ...`: the `seqlab sentiment` command on its own."""
    return run_alone(add_parser, "sentiment", argv, prog="seqlab")
