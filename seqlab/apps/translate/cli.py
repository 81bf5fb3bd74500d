"""`seqlab translate train | run | evaluate`: the translator's commands.

`train`'s options are derived from `PairSettings` and `Settings` (name,
type, default and help in one place). `seqlab translate --model DIR TEXT...`
is `translate run`: a first word that names no subcommand is a text.

    seqlab translate train --pairs fra-eng --source en --target fr --model runs/fr
    seqlab translate --model runs/fr --beam 5 --show-attention cold.png "I am cold."
    seqlab translate evaluate --model runs/fr --beam 5
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any


from seqlab.apps.architecture import refuse_inapplicable
from seqlab.apps.threads import use_threads
from seqlab.apps.translate.data import load_translation_data
from seqlab.apps.run_directory import add_run_options, interrupted_hint, record_of
from seqlab.apps.translate.run import BleuReport, evaluate_bleu, load_translator, run_settings, train
from seqlab.apps.translate.settings import ONLY_FOR, ONLY_FOR_TOKENIZER, PairSettings, Settings
from seqlab.apps.translate.transformer_model import ATTENTION_HEADS, TransformerTranslator
from seqlab.apps.translate.translation import save_attention_heatmap
from seqlab.commandline import add_options, json_line, print_help, read_lines, reports_errors
from seqlab.training import distributed

__all__ = ["add_parser"]


def add_parser(subcommands: Any) -> argparse.ArgumentParser:
    """Add `seqlab translate` with `train`, `run` (also the default) and `evaluate`."""
    parser = subcommands.add_parser(
        "translate", help="train and run attention-based translation models",
        description="Attention-based translation. `seqlab translate --model DIR TEXT...` is `translate run`.")
    parser.register("action", "parsers", _CommandOrText)
    _add_run_options(parser)
    parser.set_defaults(handler=lambda args: _run(args) if args.model else print_help(parser))
    commands = parser.add_subparsers(dest="translate_command", metavar="{train,run,evaluate}")

    train = commands.add_parser("train", help="train a translator on sentence pairs and save it",
                                description="Train a translator; OUT gets settings.json, a checkpoint and a "
                                            "log.csv row each epoch, and the model (OUT/model).")
    train.add_argument("--pairs", help="fra-eng, kor-eng, or tsv:PATH (source<TAB>target lines); needed unless "
                                       "--resume")
    train.add_argument("--source", help="source language (default en)")
    train.add_argument("--target", help="target language (default the pair's other language)")
    train.add_argument("--out", "--model", dest="out", default="runs/translate",
                       help="output directory (default runs/translate; --model is the older spelling)")
    add_options(train, PairSettings)
    add_options(train, Settings)
    add_run_options(train)
    train.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                       help="report BLEU on the held-out sentences after training (greedy)")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                       help="0 silent, 1 progress bars, 2 one line per epoch (default: bars on a terminal)")
    train.set_defaults(handler=_train)

    run = commands.add_parser("run", help="translate texts with a saved model")
    _add_run_options(run)
    run.add_argument("texts", nargs="*", help="texts to translate (none: one per line from --file or stdin)")
    run.set_defaults(handler=_run)

    evaluate = commands.add_parser("evaluate", help="BLEU and chrF on the held-out sentences of the model's "
                                                               "training data")
    evaluate.add_argument("--model", required=True, help="a directory written by `seqlab translate train`")
    evaluate.add_argument("--beam", type=int, default=1, help="beam width (1: greedy decoding)")
    evaluate.add_argument("--length-penalty", type=float, default=0.0, help="GNMT length penalty alpha (0)")
    evaluate.add_argument("--examples", type=int, default=5, help="print this many example translations")
    evaluate.set_defaults(handler=_evaluate)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a directory written by `seqlab translate train`")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy decoding)")
    parser.add_argument("--length-penalty", type=float, default=0.0, help="GNMT length penalty alpha (0)")
    parser.add_argument("--max-length", type=int, help="most output tokens (default: the model's)")
    parser.add_argument("--show-attention", metavar="PNG",
                        help="save the attention heatmap (several texts: PNG gets _1, _2, ... suffixes)")
    parser.add_argument("--attention-heads", choices=ATTENTION_HEADS, default="mean",
                        help="the transformer's cross-attention in the heatmap: the heads' mean, or each head")
    parser.add_argument("--file", help="a UTF-8 file with one text per line ('-' for stdin; without texts, "
                                       "stdin is read)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


class _CommandOrText(argparse._SubParsersAction):
    """`translate`'s subcommands, where a first word that names none is a text for `run`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.choices = _AnyWord(self._name_parser_map)

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] in self._name_parser_map:
            return super().__call__(parser, namespace, values, option_string)
        run = self._name_parser_map["run"]
        run.parse_args(values, namespace)   # keeps options given before the text (namespace has them)
        namespace.translate_command, namespace.handler = "run", run.get_default("handler")


class _AnyWord(dict):
    """argparse checks the first word against the choices; every word is acceptable here."""

    def __init__(self, names: dict):
        super().__init__()
        self.names = names

    def __contains__(self, word: object) -> bool:
        return True

    def __iter__(self):
        return iter(self.names)


@reports_errors("translate train")
def _train(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    names = [f.name for f in (*dataclasses.fields(PairSettings), *dataclasses.fields(Settings))]
    options = {name: getattr(args, name) for name in names}
    verbose = "auto" if args.verbose is None else args.verbose
    command = record_of(["seqlab", "translate", "train"], args,  # without `translate`'s own options, for `run`
                        skip=("translate_command", "model", "beam", "length_penalty", "max_length", "show_attention",
                              "attention_heads",
                              "file"))
    try:
        if args.resume:
            result = train(args.out, None, resume=True, given=_given_settings(args, options), command=command,
                           verbose=verbose)
        else:
            given_names = {n for n, v in options.items() if v is not None}
            refuse_inapplicable(options.get("arch") or "rnn", given_names, ONLY_FOR)
            refuse_inapplicable(options.get("tokenizer") or "word", given_names, ONLY_FOR_TOKENIZER, "tokenizer")
            if not args.pairs:
                print("seqlab translate train: give --pairs (fra-eng, kor-eng or tsv:PATH), or --resume to "
                      "continue a run.", file=sys.stderr)
                return 2
            result = train(args.out, run_settings(args.pairs, args.source, args.target, **options),
                           overwrite=args.overwrite, command=command, verbose=verbose)
    except KeyboardInterrupt:
        print(interrupted_hint("translate", args.out), file=sys.stderr)
        return 130
    if not distributed.is_main_process():
        return 0  # rank 0 reports, and scores the held-out sentences
    epochs = len(result.history.history.get("loss", []))
    report = evaluate_bleu(result.model, result.data) if args.evaluate else None
    if args.json:
        bleu = {} if report is None else {"bleu": report.bleu, "bleu_single_reference": report.bleu_single_reference,
                                          "chrf": report.chrf, "sentences": report.sentences,
                                          "signature": report.signature, "chrf_signature": report.chrf_signature}
        print(json_line({"out": str(args.out), "model": str(result.model_dir), "epochs": epochs,
                         "seconds": result.seconds, "history": result.history.history, **bleu},
                        non_finite_as_null=True))
    else:
        print(f"trained {epochs} epoch(s) in {result.seconds:.0f} s; saved to {result.model_dir}")
        if report is not None:
            _print_bleu(report, beam=1, examples=5)
    print(f"Translate with: seqlab translate --model {args.out} \"text\"", file=sys.stderr)
    return 0


def _given_settings(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """The settings the command line names, spelled as settings.json holds them (a TSV by absolute path)."""
    named = {"pairs": args.pairs, "source": args.source, "target": args.target, **options}
    spelled = run_settings(args.pairs or "", args.source, args.target, **options)
    return {name: spelled[name] for name, value in named.items() if value is not None}


@reports_errors("translate")
def _run(args: argparse.Namespace) -> int:
    if not args.model:
        print("seqlab translate: give --model DIR (a `seqlab translate train --out DIR`) and the texts to "
              "translate, e.g. seqlab translate --model runs/fr \"I am cold.\"", file=sys.stderr)
        return 2
    if args.beam < 1:
        raise ValueError(f"--beam must be 1 (greedy) or more, got {args.beam}.")
    if args.max_length is not None and args.max_length < 1:
        raise ValueError(f"--max-length must be at least 1 output token (leave it out for the model's), "
                         f"got {args.max_length}.")
    texts = list(getattr(args, "texts", None) or [])
    if args.file is not None or not texts:
        texts += read_lines(args.file)
    model = load_translator(args.model)
    if args.attention_heads != "mean":
        if not isinstance(model, TransformerTranslator):
            raise ValueError("--attention-heads each is for transformer translators (--arch transformer); this "
                             "recurrent model has one attention, which --show-attention draws.")
        model.attention_heads = args.attention_heads
    translations = model.translate(texts, args.beam, args.length_penalty, args.max_length)
    for index, translation in enumerate(translations, 1):
        if args.json:
            print(json_line({"source": translation.source, "translation": translation.text,
                             "tokens": translation.tokens, "log_probability": translation.log_probability,
                             "finished": translation.finished}))
        else:
            print(translation.text)
        if args.show_attention:
            path = Path(args.show_attention)
            if len(translations) > 1:
                path = path.with_name(f"{path.stem}_{index}{path.suffix or '.png'}")
            save_attention_heatmap(translation, path)
            print(f"  attention heatmap: {path}", file=sys.stderr)
    return 0


@reports_errors("translate evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    model = load_translator(args.model)
    spec = {k: v for k, v in (model.training_data or {}).items() if k not in ("min_count", "max_vocabulary")}
    if not spec:
        print(f"seqlab translate evaluate: {args.model} does not record its training data; evaluate models "
              "written by `seqlab translate train`.", file=sys.stderr)
        return 1
    data = load_translation_data(spec.pop("pairs"), spec.pop("source"), spec.pop("target"), **spec)
    _print_bleu(evaluate_bleu(model, data, args.beam, args.length_penalty), args.beam, args.examples)
    return 0


def _print_bleu(report: BleuReport, beam: int, examples: int) -> None:
    search = "greedy" if beam == 1 else f"beam {beam}"
    print(f"BLEU {report.bleu:.1f} (all references), {report.bleu_single_reference:.1f} (first reference only), "
          f"chrF {report.chrf:.1f} on {report.sentences:,} held-out sentences, {search}, {report.seconds:.0f} s")
    for translation in report.translations[:examples]:
        print(f"  {translation.source}  ->  {translation.text}")

