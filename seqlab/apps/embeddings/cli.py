"""`seqlab embeddings train | similar | analogy | evaluate | export | plot`: word vectors' commands.

`train`'s options come from `Settings`. Results go to stdout (one JSON object
with `--json`); progress and hints to stderr; an error is one line naming the
fix, exit status 1 (2 for a usage error).

    $ seqlab embeddings train --corpus imdb --architecture skipgram --epochs 5 --out runs/imdb-vectors
    $ seqlab embeddings similar --model runs/imdb-vectors great --top 5
    $ seqlab embeddings analogy --model runs/imdb-vectors man king woman
    $ seqlab embeddings evaluate --model runs/imdb-vectors
    $ seqlab embeddings export --model runs/imdb-vectors --format word2vec-binary vectors.bin
    $ seqlab embeddings plot --model runs/imdb-vectors good bad movie --neighbours 5 --out words.png
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from seqlab.apps.embeddings.run import train
from seqlab.apps.embeddings.settings import Settings
from seqlab.apps.run_directory import add_run_options, interrupted_hint, record_of
from seqlab.apps.threads import use_threads
from seqlab.commandline import add_command_group, add_options, json_line, run_alone
from seqlab.embeddings import benchmark_file, evaluate_analogies, evaluate_word_pairs, load_vectors, write_word2vec
from seqlab.embeddings.evaluation import BENCHMARKS
from seqlab.embeddings.plot import save_words_plot

__all__ = ["add_parser", "main"]

FORMATS = {"word2vec": False, "word2vec-binary": True}


def add_parser(subcommands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser, commands = add_command_group(
        subcommands, "embeddings", dest="embeddings_command",
        help="word vectors (Word2Vec, fastText): train, similar, analogy, evaluate, export, plot",
        description="Word vectors: `seqlab embeddings train | similar | analogy | evaluate | export | plot`.")
    train_parser = commands.add_parser("train", help="train Word2Vec or fastText vectors on a corpus",
                                       description="Train word vectors; progress goes to stderr.")
    add_options(train_parser, Settings)
    train_parser.add_argument("--out", default="runs/embeddings", help="output directory (default runs/embeddings)")
    add_run_options(train_parser, may_change="")  # the learning rate's schedule spans the epochs: none may change
    train_parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                              help="0 silent, 1 progress bar, 2 one line per epoch")
    train_parser.set_defaults(handler=_train_command)

    similar = _with_model(commands.add_parser("similar", help="the nearest words to a word (cosine)"))
    similar.add_argument("word")
    similar.add_argument("--top", type=int, default=10, help="how many (default 10)")
    similar.set_defaults(handler=_similar_command)

    analogy = _with_model(commands.add_parser("analogy", help="A is to B as C is to ?"))
    analogy.add_argument("words", nargs=3, metavar="WORD", help="A B C")
    analogy.add_argument("--top", type=int, default=5, help="how many answers (default 5)")
    analogy.add_argument("--method", choices=("3cosadd", "3cosmul"), default="3cosadd")
    analogy.set_defaults(handler=_analogy_command)

    evaluate = _with_model(commands.add_parser(
        "evaluate", help="WordSim-353 and SimLex-999 Spearman, Google analogy accuracy (test sets from gensim)"))
    evaluate.add_argument("--method", choices=("3cosadd", "3cosmul"), default="3cosadd")
    evaluate.set_defaults(handler=_evaluate_command)

    export = _with_model(commands.add_parser("export", help="write the vectors in word2vec's text or binary format"),
                         json_option=False)
    export.add_argument("--format", choices=FORMATS, default="word2vec")
    export.add_argument("output", help="the file to write")
    export.set_defaults(handler=_export_command)

    plot = _with_model(commands.add_parser("plot", help="draw words (and neighbours) in 2-D by PCA to a PNG or SVG"),
                       json_option=False)
    plot.add_argument("words", nargs="+", metavar="WORD")
    plot.add_argument("--neighbours", type=int, default=0, help="also draw each word's nearest N (default 0)")
    plot.add_argument("--out", required=True, help="the picture: .png or .svg")
    plot.set_defaults(handler=_plot_command)
    return parser


def _with_model(parser: argparse.ArgumentParser, json_option: bool = True) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True, help="the --out of `seqlab embeddings train`, or its vectors/")
    if json_option:
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser


def _vectors(args: argparse.Namespace):
    return load_vectors(args.model)


def _fail(command: str, error: BaseException) -> int:
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"seqlab embeddings {command}: {message}", file=sys.stderr)
    return 1


def _train_command(args: argparse.Namespace) -> int:
    names = [f.name for f in dataclasses.fields(Settings)]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    try:
        use_threads(args.threads)
        settings = None if args.resume else Settings(**given)
        result = train(settings, args.out, resume=args.resume, overwrite=args.overwrite, given=given,
                       command=record_of(["seqlab", "embeddings", "train"], args, skip=("embeddings_command",)),
                       verbose=args.verbose or "auto")
    except KeyboardInterrupt:
        print(interrupted_hint("embeddings", args.out), file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except (ValueError, OSError, ModuleNotFoundError) as error:
        return _fail("train", error)
    last = result.history[-1] if result.history else {}
    summary = {"out": args.out, "vectors": str(result.vectors_dir), "words": len(result.vectors),
               "dim": result.vectors.dim, "epochs": len(result.history), "loss": last.get("loss"),
               "words_per_second": last.get("words") / last["seconds"] if last else None}
    if args.json:
        print(json_line(summary, non_finite_as_null=True))
    else:
        print(f"Saved {summary['words']:,} word vectors of {summary['dim']} dimensions to {summary['vectors']} "
              f"(last epoch: loss {summary['loss']:.4f}, {summary['words_per_second']:,.0f} words/s).")
    return 0


def _similar_command(args: argparse.Namespace) -> int:
    try:
        if args.top < 1:
            raise ValueError(f"--top must be at least 1, got {args.top}")
        neighbours = _vectors(args).most_similar(args.word, topn=args.top)
    except (ValueError, OSError, KeyError) as error:
        return _fail("similar", error)
    return _print_neighbours(args, neighbours)


def _analogy_command(args: argparse.Namespace) -> int:
    a, b, c = args.words
    try:
        if args.top < 1:
            raise ValueError(f"--top must be at least 1, got {args.top}")
        answers = _vectors(args).most_similar(positive=[b, c], negative=[a], topn=args.top, method=args.method)
    except (ValueError, OSError, KeyError) as error:
        return _fail("analogy", error)
    return _print_neighbours(args, answers)


def _print_neighbours(args: argparse.Namespace, pairs: list[tuple[str, float]]) -> int:
    if args.json:
        print(json_line([{"word": word, "cosine": score} for word, score in pairs]))
    else:
        for word, score in pairs:
            print(f"{word}\t{score:.4f}")
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    try:
        vectors = _vectors(args)
        pairs = {name: evaluate_word_pairs(vectors, benchmark_file(BENCHMARKS[name]))
                 for name in ("wordsim353", "simlex999")}
        analogies = evaluate_analogies(vectors, benchmark_file(BENCHMARKS["analogies"]), method=args.method)
    except (ValueError, OSError, ModuleNotFoundError) as error:
        return _fail("evaluate", error)
    result = {**{name: {"spearman": s.spearman, "pearson": s.pearson, "pairs": s.pairs, "oov_share": s.oov_share}
                 for name, s in pairs.items()},
              "analogies": {"accuracy": analogies.accuracy, "correct": analogies.correct,
                            "questions": analogies.questions, "oov_share": analogies.oov_share,
                            "method": args.method}}
    if args.json:
        print(json_line(result, non_finite_as_null=True))
        return 0
    print("test\tscore\tout of vocabulary")
    for name, score in pairs.items():
        rho = "n/a (too few pairs with vectors)" if score.spearman != score.spearman else f"{score.spearman:.4f}"
        print(f"{name}\tSpearman {rho}\t{score.oov_share:.1%} of {score.pairs} pairs")
    accuracy = "n/a" if not analogies.questions else f"{analogies.accuracy:.2%}"
    print(f"analogies ({args.method})\taccuracy {accuracy} ({analogies.correct:,}/{analogies.questions:,})\t"
          f"{analogies.oov_share:.1%} of the questions")
    return 0


def _export_command(args: argparse.Namespace) -> int:
    try:
        vectors = _vectors(args)
        write_word2vec(vectors, args.output, binary=FORMATS[args.format])
    except (ValueError, OSError) as error:
        return _fail("export", error)
    print(f"Wrote {len(vectors):,} vectors of {vectors.dim} dimensions to {args.output} ({args.format}).",
          file=sys.stderr)
    return 0


def _plot_command(args: argparse.Namespace) -> int:
    try:
        if args.neighbours < 0:
            raise ValueError(f"--neighbours must be 0 or more, got {args.neighbours}")
        if Path(args.out).suffix.lower() not in (".png", ".svg"):
            raise ValueError(f"--out must end in .png or .svg, got {args.out}")
        save_words_plot(_vectors(args), args.words, args.out, neighbours=args.neighbours)
    except (ValueError, OSError, KeyError, ModuleNotFoundError) as error:
        return _fail("plot", error)
    print(f"Wrote {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_alone(add_parser, "embeddings", argv)

