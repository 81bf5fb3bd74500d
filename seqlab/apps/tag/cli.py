"""`seqlab tag train | evaluate | predict`: the tagger's commands.

`train`'s options are derived from `DataSettings` and `Settings` (name, type,
default and help in one place).

    seqlab tag train --dataset ud-ewt --out runs/pos
    seqlab tag train --dataset klue-ner --crf --out runs/ner
    seqlab tag evaluate --model runs/ner --json
    seqlab tag predict --model runs/pos "I don't like green eggs."
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from seqlab.apps.run_directory import add_run_options, interrupted_hint, record_of
from seqlab.apps.tag.encoding import split_text
from seqlab.apps.tag.run import evaluate_tagger, evaluation_data, load_tagger, run_settings, train
from seqlab.apps.tag.settings import DataSettings, Settings
from seqlab.apps.threads import use_threads
from seqlab.commandline import add_options, json_line, print_help, read_lines, reports_errors
from seqlab.training import distributed

__all__ = ["add_parser", "entity_spans"]


def add_parser(subcommands: Any) -> argparse.ArgumentParser:
    """Add `seqlab tag` with `train`, `evaluate` and `predict`."""
    parser = subcommands.add_parser("tag", help="train and run sequence taggers (part of speech, named entities)",
                                    description="Sequence tagging: one tag per token (POS on UD English EWT, "
                                                "Korean named entities on KLUE).")
    parser.set_defaults(handler=lambda args: print_help(parser))
    commands = parser.add_subparsers(dest="tag_command", metavar="{train,evaluate,predict}")

    train_parser = commands.add_parser("train", help="train a tagger and save it",
                                       description="Train a tagger; OUT gets settings.json, a checkpoint and a "
                                                   "log.csv row each epoch, the model (OUT/model) and "
                                                   "summary.json with the test scores.")
    add_options(train_parser, DataSettings)
    add_options(train_parser, Settings)
    train_parser.add_argument("--out", default="runs/tag", help="output directory (default runs/tag)")
    add_run_options(train_parser)
    train_parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    train_parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                              help="0 silent, 1 progress bars, 2 one line per epoch (default: bars on a terminal)")
    train_parser.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="score a tagger: token accuracy, entity F1, confusions")
    evaluate.add_argument("--model", required=True, help="a directory written by `seqlab tag train`")
    evaluate.add_argument("--dataset", help="ud-ewt, klue-ner (their test part), conll:PATH or tsv:PATH (the whole "
                                            "file); default: the test part of the model's own data")
    evaluate.add_argument("--tagset", choices=("upos", "xpos"), help="CoNLL-U tag column (default: the model's)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object (with the confusion matrix)")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="tag texts with a saved model")
    predict.add_argument("--model", required=True, help="a directory written by `seqlab tag train`")
    predict.add_argument("texts", nargs="*", help="texts to tag (none: one per line from --file or stdin)")
    predict.add_argument("--file", help="a UTF-8 file with one text per line ('-' for stdin)")
    predict.add_argument("--json", action="store_true", help="one JSON object per text")
    predict.set_defaults(handler=_predict)
    return parser


@reports_errors("tag train")
def _train(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    names = [f.name for f in (*dataclasses.fields(DataSettings), *dataclasses.fields(Settings))]
    options = {name: getattr(args, name) for name in names}
    verbose = "auto" if args.verbose is None else args.verbose
    command = record_of(["seqlab", "tag", "train"], args, skip=("tag_command",))
    try:
        if args.resume:
            spelled = run_settings(**options)
            given = {name: spelled[name] for name, value in options.items() if value is not None}
            result = train(args.out, None, resume=True, given=given, command=command, verbose=verbose)
        else:
            result = train(args.out, run_settings(**options), overwrite=args.overwrite, command=command,
                           verbose=verbose)
    except KeyboardInterrupt:
        print(interrupted_hint("tag", args.out), file=sys.stderr)
        return 130
    if not distributed.is_main_process():
        return 0
    if args.json:
        print(json_line({"out": str(args.out), "model": str(result.model_dir), "epochs": len(result.epoch_seconds),
                         "seconds": result.train_seconds, "stop_reason": result.stop_reason,
                         "test": result.test.to_dict(), "history": result.history}, non_finite_as_null=True))
    else:
        print(f"trained {len(result.epoch_seconds)} epoch(s) in {result.train_seconds:.0f} s ({result.stop_reason}); "
              f"saved to {result.model_dir}")
        print(f"test ({result.data.test.name}): " + result.test.report())
    print(f"Tag with: seqlab tag predict --model {args.out} \"text\"", file=sys.stderr)
    return 0


@reports_errors("tag evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    model = load_tagger(args.model)
    data = evaluation_data(model, args.dataset, args.tagset)
    scores = evaluate_tagger(model, data)
    if args.json:
        print(json_line({"model": args.model, "data": data.name, **scores.to_dict()}))
    else:
        print(f"{data.name}: " + scores.report())
    return 0


@reports_errors("tag predict")
def _predict(args: argparse.Namespace) -> int:
    model = load_tagger(args.model)
    texts = list(args.texts or [])
    if args.file is not None or not texts:
        texts += read_lines(args.file)
    tokens_kind = model.encoder.tokens
    sentences = [split_text(text, tokens_kind) for text in texts]
    bio = model.encoder.is_bio
    for text, tokens, tags in zip(texts, sentences, model.tag(sentences)):
        entities = entity_spans(tokens, tags, tokens_kind) if bio else None
        if args.json:
            print(json_line({"text": text, "tokens": tokens, "tags": tags,
                             **({"entities": entities} if entities is not None else {})}))
        elif entities is not None:
            found = "; ".join(f"{e['text']} [{e['type']}]" for e in entities)
            print(f"{text}\t{found or '(no entities)'}")
        else:
            print(" ".join(f"{token}/{tag}" for token, tag in zip(tokens, tags)))
    return 0


def entity_spans(tokens: list[str], tags: list[str], tokens_kind: str = "words") -> list[dict[str, Any]]:
    """The entities of IOB2 `tags`: text, type and token span [start, end) (characters: offsets in the text)."""
    spans: list[dict[str, Any]] = []
    for index, tag in enumerate([*tags, "O"]):
        if spans and spans[-1]["end"] is None and tag != f"I-{spans[-1]['type']}":
            spans[-1]["end"] = index
        if tag.startswith("B-"):
            spans.append({"type": tag[2:], "start": index, "end": None})
    joiner = "" if tokens_kind == "characters" else " "
    return [{"text": joiner.join(tokens[s["start"]:s["end"]]), **s} for s in spans]
