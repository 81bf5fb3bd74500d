"""docs/results/charlm.md from finished `seqlab charlm train` runs: epochs, samples, generation speed.

Training is the slow part and is run first, one run at a time (each writes
OUT/settings.json, OUT/history.json, OUT/model):

    SEQLAB_DATA_DIR=../shared/datasets python -m seqlab.apps.charlm train --preset book --threads 1 --max-minutes 45 --out runs/results/book
    SEQLAB_DATA_DIR=../shared/datasets python -m seqlab.apps.charlm train --preset best --threads 1 --out runs/results/best
    SEQLAB_DATA_DIR=../shared/datasets python -m seqlab.apps.charlm train --corpus koconovel --preset quick --max-minutes 15 --threads 1 --out runs/results/koconovel

(`python -m seqlab.apps.charlm ...` is `seqlab charlm ...`.) Then this script
reads them, times generation with the book model (incremental single stream,
batched, and the tutorial's 40-character window re-run for comparison), draws
the samples and writes the Markdown:

    python benchmarks/charlm_results.py --book runs/results/book --best runs/results/best \\
        --koconovel runs/results/koconovel --write docs/results/charlm.md

Samples use `--seed` (default 1); timings take the best of `--repeats` runs
with one intra-op thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from seqlab.apps.charlm import load_generator
from seqlab.generation import Sampling, TextGenerator

TUTORIAL_TRAIN_LOSS = 1.0478
BEST_TARGET = 1.20
SPEED_TARGET = 2_000
PRIME = "The island"
SCALE_FACTORS = (2.0, 1.0, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, required=True, help="OUT of the book preset's run")
    parser.add_argument("--best", type=Path, help="OUT of the best preset's run")
    parser.add_argument("--tried", type=Path, nargs="*", default=[], help="OUTs of other recipes tried for `best`")
    parser.add_argument("--koconovel", type=Path, help="OUT of the KoCoNovel run")
    parser.add_argument("--demo", type=Path, help="OUT of `seqlab charlm demo` (the main job)")
    parser.add_argument("--write", type=Path, help="write the Markdown here (else print it)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)

    book = Run(args.book)
    sections = [machine_section(), book_section(book), samples_section(book, args.seed, args.length)]
    speed = generation_speed(book.generator(), args.repeats)
    sections.append(speed_section(speed))
    best = Run(args.best) if args.best else None
    if best is not None:
        sections.append(best_section(best, book, [Run(path) for path in args.tried]))
    korean = Run(args.koconovel) if args.koconovel else None
    if korean is not None:
        sections.append(koconovel_section(korean, args.seed))
    if args.demo:
        sections.append(demo_section(Run(args.demo)))
    sections.insert(1, targets_section(book, best, speed, korean))
    text = "# Character-level language model: results\n\n" + "\n\n".join(sections) + "\n"
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
        print(f"wrote {args.write}")
    else:
        print(text)


class Run:
    """A finished training run's directory: settings, per-epoch history, model."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.settings = json.loads((directory / "settings.json").read_text())
        record = json.loads((directory / "history.json").read_text())
        self.history, self.stop_reason = record["history"], record["stop_reason"]
        self.parameters, self.vocabulary_size = record["parameters"], record["vocabulary_size"]
        self._generator: TextGenerator | None = None

    def generator(self) -> TextGenerator:
        if self._generator is None:
            self._generator = load_generator(self.directory)
        return self._generator

    @property
    def epochs(self) -> int:
        return len(self.history["loss"])

    def last(self, key: str) -> float:
        return self.history[key][-1]

    def best_held_out(self) -> tuple[int, float, float]:
        """(epoch, loss, bpc) of the lowest held-out loss."""
        index = min(range(self.epochs), key=lambda i: self.history["val_loss"][i])
        return index + 1, self.history["val_loss"][index], self.history["val_bpc"][index]

    def recipe(self) -> str:
        s = self.settings
        parts = [f"{s['cell'].upper()} {s['layers']}×{s['units']}", f"embedding {s['embedding_dim']}",
                 f"seq_len {s['seq_len']}", f"batch {s['batch_size']}",
                 "stateful (TBPTT over parallel streams)" if s["stateful"] else
                 f"shuffled chunks (buffer {s['shuffle_buffer'] or 'all'})",
                 f"Adam lr {s['lr']:g}" + (f", global clipnorm {s['clip']:g}" if s["clip"] else ""),
                 f"dropout {s['dropout']:g}", f"{self.parameters:,} parameters"]
        if s.get("reduce_lr_patience"):
            parts.insert(-1, f"learning rate halved after {s['reduce_lr_patience']} epoch(s) without a better "
                             "held-out loss")
        if s.get("patience"):
            parts.insert(-1, f"early stop after {s['patience']} such epochs, keeping the best weights")
        return ", ".join(parts)


# ------------------------------------------------------------------ sections
def machine_section() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, one intra-op thread "
            f"(`--threads 1`). Other training jobs shared the two cores during the training runs, so epoch "
            f"times are wall-clock times under that load, not the speed of an idle machine; the load average "
            f"when this page (and its generation timings) was written: {load}.")


def targets_section(book: Run, best: Run | None, speed: dict, korean: Run | None) -> str:
    rows = ["| target | result | met? |", "|---|---|---|"]
    full = book.epochs >= 20
    verdict = ("yes" if book.last("loss") <= TUTORIAL_TRAIN_LOSS else "no") if full else "not measured"
    rows.append(f"| book preset: training loss after 20 epochs ≤ {TUTORIAL_TRAIN_LOSS} | "
                f"{book.last('loss'):.4f} after {book.epochs} of 20 epochs"
                + ("" if full else " (the run's time budget ended it)") + f" | {verdict} |")
    if best is not None:
        _, loss, bpc = best.best_held_out()
        rows.append(f"| best preset: held-out loss ≤ {BEST_TARGET:.2f} nats/char | {loss:.4f} ({bpc:.4f} bits/char) "
                    f"| {'yes' if loss <= BEST_TARGET else 'no'} |")
    single = speed["incremental, 1 stream"][0]
    rows.append(f"| generation, single stream ≥ {SPEED_TARGET:,} characters/s | {single:,.0f} characters/s "
                f"(wall clock) | {'yes' if single >= SPEED_TARGET else 'no'} |")
    if korean is not None:
        rows.append(f"| KoCoNovel: held-out bits per character | {korean.best_held_out()[2]:.4f} | reported |")
    return "## Targets\n\n" + "\n".join(rows)


def book_section(book: Run) -> str:
    stopped = f" Training stopped early: {book.stop_reason}." if book.stop_reason else ""
    if book.epochs < book.settings["epochs"]:
        stopped += (f" The remaining epochs were not run here; `seqlab charlm train --resume --out "
                    f"{book.directory} --max-minutes M` continues the run from its last checkpoint.")
    seconds = book.history.get("seconds", [])
    return (f"## The `book` preset\n\nThe tutorial's model and data: {book.recipe()}; the model's "
            f"{book.vocabulary_size} classes are the {book.vocabulary_size - 2} characters plus the vocabulary's "
            f"padding and unknown indices (never targets), so Embedding and Dense have {2 * 256 + 2 * 513:,} "
            f"more parameters than the tutorial's 1,636,432. "
            f"Trained on the first 90% of the text (non-overlapping 41-character chunks), held-out loss on "
            f"the last 10%.\n\n"
            f"Ran {book.epochs} of {book.settings['epochs']} epochs.{stopped} Mean time per epoch on this "
            f"CPU: {sum(seconds) / max(len(seconds), 1) / 60:.1f} minutes (validation included).\n\n"
            f"Command: `{command_line(book)}`\n\n{epoch_table(book.history)}\n\n"
            f"Loss in nats per character; bits per character = loss / ln 2. The training loss of an epoch "
            f"is its running mean over the epoch's batches, as Keras reports it (the tutorial's "
            f"{TUTORIAL_TRAIN_LOSS} is that number after epoch 20).")


def samples_section(book: Run, seed: int, length: int) -> str:
    generator = book.generator()
    parts = [f"## Samples from the book model\n\n{length} characters after '{PRIME}', seed {seed}, "
             f"model after epoch {book.epochs}:\n\n"
             f"`seqlab charlm generate --model {book.directory} --prime \"{PRIME}\" --length {length} "
             f"--scale-factor α --seed {seed}`"]
    for scale_factor in SCALE_FACTORS:
        text = generator.generate(PRIME, length, Sampling(scale_factor=scale_factor), seed=seed)[0]
        parts.append(f"### α = {scale_factor} (temperature {1 / scale_factor:g})\n\n```text\n{text}\n```")
    return "\n\n".join(parts)


def generation_speed(generator: TextGenerator, repeats: int) -> dict[str, tuple[float, float]]:
    """Characters per wall-clock second and per CPU second: incremental (1, 8, 64 streams), window re-run."""
    speeds = {}
    for streams, length in ((1, 2000), (8, 1000), (64, 500)):
        wall, cpu = best_of(repeats, lambda: generator.generate(PRIME, length, num_samples=streams, seed=0))
        speeds[f"incremental, {streams} stream" + ("s" if streams > 1 else "")] = (streams * length / wall,
                                                                                  streams * length / cpu)
    length = 200
    wall, cpu = best_of(repeats, lambda: window_rerun(generator, PRIME, length))
    speeds["tutorial's window re-run, 1 stream"] = (length / wall, length / cpu)
    return speeds


def window_rerun(generator: TextGenerator, prime: str, length: int, window: int = 40) -> str:
    """The tutorial's `sample()`: each character re-runs the model on the last 40 characters."""
    model, vocabulary = generator.model, generator.vocabulary
    model.eval()
    ids = torch.tensor([vocabulary.encode(prime)])
    chosen = []
    with torch.no_grad():
        for _ in range(length):
            logits = model(ids)[:, -1]
            next_id = torch.multinomial(torch.softmax(logits, -1), 1)
            chosen.append(int(next_id))
            ids = torch.cat([ids, next_id], dim=1)[:, -window:]
    return "".join(vocabulary.tokens[i] for i in chosen)


def best_of(repeats: int, work) -> tuple[float, float]:
    """The shortest wall-clock and CPU (this process) seconds of `repeats` runs of `work()`."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def speed_section(speed: dict[str, tuple[float, float]]) -> str:
    rows = ["| method | characters/s (wall clock) | characters per CPU second |", "|---|---:|---:|"]
    rows += [f"| {name} | {wall:,.0f} | {cpu:,.0f} |" for name, (wall, cpu) in speed.items()]
    return ("## Generation speed (book model, this CPU, one thread)\n\nIncremental generation runs the prime "
            "once, then one LSTM step per character with the carried state (`seqlab.generation`); several "
            "streams are one batch, so the throughput counts all streams. The tutorial's `sample()` re-runs "
            "the model over the last 40 characters for every new one. Best of the repeats; sampling at "
            "α = 1. Wall-clock speed is what a user sees on this shared machine; per CPU second (this "
            "process's CPU time) is closer to the speed of an idle core.\n\n" + "\n".join(rows))


def best_section(best: Run, book: Run, tried: list[Run]) -> str:
    epoch, loss, bpc = best.best_held_out()
    _, book_loss, book_bpc = book.best_held_out()
    stopped = f" Training stopped: {best.stop_reason}." if best.stop_reason else ""
    return (f"## The `best` preset\n\nRecipe: {best.recipe()}. The text is laid out as {best.settings['batch_size']} "
            f"parallel streams read in consecutive {best.settings['seq_len']}-character windows with the state "
            f"carried across windows (truncated BPTT); the held-out tail is read the same way, so every "
            f"held-out character is predicted from all the text before it in the tail (the book preset's "
            f"held-out loss predicts each 40-character chunk from a zero state).{stopped}\n\n"
            f"Command: `{command_line(best)}`\n\n{epoch_table(best.history)}\n\n"
            f"Best held-out loss {loss:.4f} nats/char ({bpc:.4f} bits/char) after epoch {epoch}; the book "
            f"run's best was {book_loss:.4f} ({book_bpc:.4f} bits/char). The saved model holds the weights of "
            f"epoch {epoch} (early stopping restores them).\n\n" + tried_table(best, tried))


def tried_table(best: Run, tried: list[Run]) -> str:
    """Every recipe tried for `best`, 40 minutes each: the search, such as it was."""
    rows = ["Recipes tried (each run once, with a 40-minute budget; they differ only in dropout):\n",
            "| dropout | command (as run) | epochs run | best held-out loss (bits/char) |", "|---:|---|---:|---|"]
    for run in [*tried, best]:
        epoch, loss, bpc = run.best_held_out()
        rows.append(f"| {run.settings['dropout']:g} | `{command_line(run)}` | {run.epochs} | {loss:.4f} ({bpc:.4f}) "
                    f"after epoch {epoch} |")
    if not tried:
        return "\n".join(rows)
    first = tried[0]
    return "\n".join(rows) + (f"\n\nThe first try overfitted (final training loss {first.last('loss'):.2f} against "
                               f"{first.last('val_loss'):.2f} held out), so the next raised the dropout; the `best` "
                               f"preset holds the last recipe (dropout {best.settings['dropout']:g}; it had "
                               f"{first.settings['dropout']:g} when the first ran). No wider search was made.")


def koconovel_section(korean: Run, seed: int) -> str:
    epoch, loss, bpc = korean.best_held_out()
    generator = korean.generator()
    prime = "그는"
    sample = generator.generate(prime, 300, Sampling(scale_factor=2.0), seed=seed)[0]
    stopped = f" Training stopped: {korean.stop_reason}." if korean.stop_reason else ""
    return (f"## KoCoNovel (Korean, Hangul syllables as characters)\n\n50 Korean novels, "
            f"{korean.vocabulary_size - 2:,} distinct characters. Recipe: {korean.recipe()}.{stopped}\n\n"
            f"Command: `{command_line(korean)}`\n\n{epoch_table(korean.history)}\n\n"
            f"Held-out (last 10% of the joined novels): {loss:.4f} nats/char, **{bpc:.4f} bits per "
            f"character** (epoch {epoch}). Sample, α = 2.0, seed {seed}, prime '{prime}':\n\n```text\n{sample}\n```")


def demo_section(demo: Run) -> str:
    stopped = f" ({demo.stop_reason})" if demo.stop_reason else ""
    return (f"## The main job: `seqlab charlm demo`\n\nThe quick preset ({demo.recipe()}) trained for "
            f"{demo.settings['max_minutes']:g} minutes{stopped}, then samples at α = 2.0, 1.0 and 0.5.\n\n"
            f"Command: `{command_line(demo)}`\n\n{epoch_table(demo.history)}")


# ------------------------------------------------------------------- helpers
def epoch_table(history: dict[str, list[float]]) -> str:
    """A Markdown table of the per-epoch losses (nats/char), bits per character and minutes."""
    rows = ["| epoch | loss | bits/char | held-out loss | held-out bits/char | minutes |",
            "|---:|---:|---:|---:|---:|---:|"]
    for index in range(len(history["loss"])):
        cells = [history.get(key, [math.nan] * (index + 1))[index]
                 for key in ("loss", "bpc", "val_loss", "val_bpc")]
        minutes = history.get("seconds", [math.nan] * (index + 1))[index] / 60
        rows.append(f"| {index + 1} | " + " | ".join(f"{c:.4f}" for c in cells) + f" | {minutes:.1f} |")
    return "\n".join(rows)


def command_line(run: Run) -> str:
    """The train command(s) that produced a run (OUT/command.txt), for inside backquotes."""
    record = run.directory / "command.txt"
    if record.is_file():  # one line per invocation: the first run, then any --resume
        return "`, then `".join(record.read_text().split("\n")[:-1])
    return f"seqlab charlm train ... --out {run.directory}` (settings: `{json.dumps(run.settings)}"


if __name__ == "__main__":
    main()
