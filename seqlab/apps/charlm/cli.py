"""`seqlab charlm train | generate | demo`: the character LM's commands.

`train`'s model and data options are derived from `Settings` (name, type,
default and help in one place); options given beside `--preset` override it.
Only the text (prime and continuation) goes to stdout; progress, headers and
errors go to stderr, each error as one line naming the fix.

    $ seqlab charlm train --preset book --corpus mysterious-island --out runs/book
    $ seqlab charlm generate --model runs/book --prime "The island" --length 500 --scale-factor 2.0
    $ seqlab charlm demo          # the main job: a few minutes of training, then samples at α = 2, 1, 0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
from pathlib import Path

import torch

from seqlab.apps.charlm.run import load_generator, stream_samples, train
from seqlab.apps.charlm.settings import PRESETS, Settings, settings_from_args
from seqlab.apps.threads import use_threads
from seqlab.apps.run_directory import add_run_options, interrupted_hint, record_of
from seqlab.commandline import add_command_group, add_options, json_line, run_alone
from seqlab.generation import Sampling, TextGenerator
from seqlab.generation import PRECISIONS
from seqlab.training import distributed

__all__ = ["add_parser", "command_line", "main", "settings_from_args"]

DEMO_SCALE_FACTORS = (2.0, 1.0, 0.5)
# Settings fields that are not options of `train`: the text and corpus share a group of their own.
SOURCE_FIELDS = ("text", "corpus")


def add_parser(subcommands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `charlm` with `train`, `generate` and `demo` to the `seqlab` command."""
    parser, commands = add_command_group(subcommands, "charlm", dest="charlm_command",
                                         help="character-level language model: train, generate, demo",
                                         description="Character-level language model: `seqlab charlm train | "
                                                     "generate | demo`.")
    _add_train(commands)
    _add_generate(commands)
    _add_demo(commands)
    return parser


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    add_options(parser.add_mutually_exclusive_group(), Settings, SOURCE_FIELDS)


def _add_train(commands: argparse._SubParsersAction) -> None:
    train_parser = commands.add_parser("train", help="train a character LM on a text",
                                       description="Train a character LM; progress and per-epoch results go to stderr.")
    train_parser.add_argument("--preset", choices=sorted(PRESETS),
                              help="book: the tutorial's run; best: the best recipe for a small CPU; "
                                   "quick: a few minutes; transformer: a causal transformer of the best "
                                   "LSTM's size (options given beside it override it)")
    _add_source_options(train_parser)
    add_options(train_parser, Settings, [f.name for f in dataclasses.fields(Settings) if f.name not in SOURCE_FIELDS])
    option = train_parser.add_argument
    option("--out", default="runs/charlm", help="output directory (default runs/charlm)")
    add_run_options(train_parser)
    option("--verbose", type=int, choices=(0, 1, 2), default=None, help="0 silent, 1 progress bars, 2 one line per epoch")
    _add_threads_option(train_parser, None)
    train_parser.set_defaults(handler=_train_command)


def _add_generate(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser("generate", help="generate text from a trained model (streams to stdout)",
                                   description="Only the text (prime and continuation) goes to stdout.")
    generate.add_argument("--model", required=True, help="a training run's OUT directory, OUT/model, or a checkpoint")
    generate.add_argument("--prime", default="The island", help="text to start from (default 'The island')")
    generate.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    _add_sampling_options(generate)
    generate.add_argument("--num-samples", type=int, default=1, help="samples, generated as one batch (default 1)")
    generate.add_argument("--seed", type=int, help="seed for sampling (default: random, printed to stderr)")
    generate.add_argument("--precision", choices=PRECISIONS, default="float32",
                          help="bfloat16: each step's recurrent product from bfloat16 copies of the state and "
                               "the recurrent kernel, summed in float32 (about twice as fast for many samples "
                               "on CPUs with AVX512-BF16; states and output in float32) (default float32)")
    generate.add_argument("--json", action="store_true",
                          help="one JSON object per sample ({\"sample\", \"seed\", \"prime\", \"text\"}) once all "
                               "are done, instead of streaming the text")
    generate.add_argument("--allow-unknown", action="store_true",
                          help="map prime characters the model never saw to the unknown index instead of failing")
    _add_threads_option(generate, 1)
    generate.set_defaults(handler=_generate_command)


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--temperature", type=float, help="divide the logits by T (T = 1/α)")
    scale.add_argument("--scale-factor", type=float, help="multiply the logits by α, as the tutorial (default 1)")
    scale.add_argument("--greedy", action="store_true", help="always take the most probable character")
    parser.add_argument("--top-k", type=int, help="sample among the k most probable characters")
    parser.add_argument("--top-p", type=float, help="sample among the most probable characters holding mass p")


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="the main job: train for a few minutes, save, print samples",
                               description="Train the quick preset (an LSTM) for a few minutes on the CPU, save "
                                           "it, then print 'The island' continued at α = 2.0, 1.0 and 0.5.")
    _add_source_options(demo)
    demo.add_argument("--max-minutes", type=float, default=3.0, help="training time (default 3)")
    demo.add_argument("--out", default="runs/charlm-demo", help="output directory (default runs/charlm-demo)")
    demo.add_argument("--prime", default="The island", help="text to start from (default 'The island')")
    demo.add_argument("--length", type=int, default=300, help="characters per sample (default 300)")
    demo.add_argument("--seed", type=int, default=1, help="seed for training and sampling (default 1)")
    _add_threads_option(demo, 1)
    demo.set_defaults(handler=_demo_command)


def _add_threads_option(parser: argparse.ArgumentParser, default: int | None) -> None:
    # One step of generation (and a small model's training step) is a few small matrix products: on a
    # shared or small CPU, one intra-op thread avoids the synchronisation that otherwise dominates them.
    parser.add_argument("--threads", type=int, default=default,
                        help="PyTorch intra-op threads for this command (default: "
                             + ("PyTorch's choice" if default is None else str(default)) + ")")


def _given_settings(args: argparse.Namespace) -> dict:
    """The settings the command line names: its preset's, then each option given."""
    names = {field.name for field in dataclasses.fields(Settings)}
    given = dict(PRESETS[args.preset]) if args.preset else {}
    given.update({name: value for name, value in vars(args).items() if name in names and value is not None})
    if given.get("text") is not None:
        given["text"] = str(Path(given["text"]).expanduser().resolve())  # as settings.json holds it
    return given


def command_line(args: argparse.Namespace) -> str:
    """The `seqlab charlm train|demo ...` command line of `args` (options in canonical spelling)."""
    return record_of(["seqlab", "charlm", args.charlm_command], args, skip=("charlm_command",))


def _train_command(args: argparse.Namespace) -> int:
    try:
        use_threads(args.threads)
        settings = None if args.resume else settings_from_args(args)
        result = train(settings, args.out, resume=args.resume, overwrite=args.overwrite,
                       given=_given_settings(args) if args.resume else None, command=command_line(args),
                       verbose="auto" if args.verbose is None else args.verbose)
        settings = result.settings
    except (ValueError, OSError) as error:  # OSError: FileNotFoundError, NotADirectoryError, PermissionError
        print(f"seqlab charlm train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted_hint("charlm", args.out), file=sys.stderr)
        return 130
    losses, bits = result.history.get("val_loss", []), result.history.get("val_bpc", [])
    best = min(range(len(losses)), key=losses.__getitem__) if losses else None
    kept = "the saved model" if settings.patience is not None else f"{Path(args.out) / 'checkpoints' / 'best'}"
    if args.json:
        distributed.print_main(json_line({
            "out": str(args.out), "model": str(result.model_dir), "best": kept, "stop_reason": result.stop_reason,
            "best_epoch": None if best is None else best + 1, "history": result.history,
            "settings": dataclasses.asdict(settings)}, non_finite_as_null=True))
    elif losses:
        distributed.print_main(
            f"Held-out loss after epoch {len(losses)}: {losses[-1]:.4f} nats/char ({bits[-1]:.4f} bits/char); "
            f"best: {losses[best]:.4f} ({bits[best]:.4f} bits/char) after epoch {best + 1}, in {kept}.")
    distributed.print_main(f"Saved {result.model_dir}. Generate with: seqlab charlm generate --model {args.out}",
                           file=sys.stderr)
    return 0


def _sampling_from_args(args: argparse.Namespace) -> Sampling:
    return Sampling.create(temperature=args.temperature, scale_factor=args.scale_factor, top_k=args.top_k,
                           top_p=args.top_p, greedy=args.greedy)


def _generate_command(args: argparse.Namespace) -> int:
    try:
        use_threads(args.threads)
        sampling = _sampling_from_args(args)
        generator = load_generator(args.model, args.precision)
        seed = args.seed if args.seed is not None else int(torch.randint(0, 2**31, (1,)).item())
        if args.seed is None:
            print(f"[seed {seed}]", file=sys.stderr)
        generator.encode(args.prime, args.allow_unknown)  # fail before anything reaches stdout
        if args.json:
            samples = stream_samples(generator, args.prime, args.length, sampling, args.num_samples, seed,
                                     args.allow_unknown, out=io.StringIO(), quiet=True)
            for index, sample in enumerate(samples, 1):
                print(json_line({"sample": index, "seed": seed, "prime": args.prime, "text": sample}))
        else:
            stream_samples(generator, args.prime, args.length, sampling, args.num_samples, seed, args.allow_unknown)
    except (ValueError, FileNotFoundError) as error:
        print(f"seqlab charlm generate: {error}", file=sys.stderr)
        return 1
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    values = {**PRESETS["quick"], "max_minutes": args.max_minutes, "seed": args.seed}
    if args.text is not None:
        values.update(text=args.text, corpus=None)
    elif args.corpus is not None:
        values["corpus"] = args.corpus
    try:
        use_threads(args.threads)
        result = train(Settings(**values), args.out, overwrite=True, command=command_line(args))
        generator = TextGenerator(result.model, result.vocabulary)
        generator.encode(args.prime)
    except (ValueError, FileNotFoundError) as error:
        print(f"seqlab charlm demo: {error}", file=sys.stderr)
        return 1
    if not distributed.is_main_process():
        return 0  # rank 0 shows the samples
    history = result.history
    print(f"Trained {len(history['loss'])} epoch(s) ({result.stop_reason or 'all epochs'}): held-out loss "
          f"{history['val_loss'][-1]:.4f} nats/char, {history['val_bpc'][-1]:.4f} bits/char. "
          f"Saved to {result.model_dir}.\n")
    for scale_factor in DEMO_SCALE_FACTORS:
        print(f"--- α = {scale_factor} (temperature {1 / scale_factor:g}) ---", flush=True)
        stream_samples(generator, args.prime, args.length, Sampling(scale_factor=scale_factor), seed=args.seed,
                       quiet=True)
        print()
    print(f"More: seqlab charlm generate --model {args.out} --prime \"{args.prime}\" --scale-factor 1.0")
    return 0




def main(argv: list[str] | None = None) -> int:
    """`python -m seqlab.apps.charlm ...`: the same as `seqlab charlm ...`."""
    return run_alone(add_parser, "charlm", argv, prog="python -m seqlab.apps.charlm")
