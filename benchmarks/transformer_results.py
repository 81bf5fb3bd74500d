"""Transformer vs recurrent models on the two applications: the section of docs/results/attention.md.

Reads finished runs (trained first, one at a time):

    export SEQLAB_DATA_DIR=../shared/datasets
    python benchmarks/sentiment_results.py --only transformer/official transformer/official-bilstm
    seqlab charlm train --preset best --threads 1 --out runs/results/best-dropout0.4
    seqlab charlm train --preset transformer --threads 1 --out runs/results/transformer
    python benchmarks/transformer_results.py --write docs/results/attention.md

For the character LMs it also measures what the training logs cannot: the
transformer's held-out loss with a full window of context for every character
(sliding windows; its training-time held-out loss averages over positions
that see 0..seq_len-1 characters, while the stateful LSTM's sees the whole
tail before each character). Generation speed has its own benchmark
(`generation_speed.py`). The section replaces everything in the target file
from its marker line on; the rest of the file (`translate_results.py report`)
is kept.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from seqlab.apps.charlm import Settings, load_generator, load_text, split_ids

MARKER = "<!-- transformer-vs-recurrent: written by benchmarks/transformer_results.py -->"


def sentiment_rows(runs_dir: Path) -> list[str]:
    rows = ["| model | parameters | test accuracy | epochs run (best) | final training accuracy | training time |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, label in (("transformer-official", "transformer (1 block, 2 heads, average pooling)"),
                        ("transformer-official-bilstm", "Bi-LSTM(32), max pooling")):
        summary_file = runs_dir / name / "summary.json"
        if not summary_file.is_file():
            continue
        summary = json.loads(summary_file.read_text())
        best = f" ({summary['best_epoch'] + 1})" if summary.get("best_epoch") is not None else ""
        rows.append(f"| {label} | {summary['parameters']:,} | {summary['test']['accuracy']:.2%} | "
                    f"{summary['epochs_run']}{best} | {summary['history']['accuracy'][-1]:.1%} | "
                    f"{summary['train_seconds'] / 60:.1f} min |")
    return rows


class CharRun:
    """A finished `seqlab charlm train` run: settings, history, model."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.settings = Settings(**json.loads((directory / "settings.json").read_text()))
        record = json.loads((directory / "history.json").read_text())
        self.history, self.parameters = record["history"], record["parameters"]
        self.generator = load_generator(directory)

    def command(self) -> str:
        """The command that started the run (OUT/command.txt's first line)."""
        record = self.directory / "command.txt"
        return record.read_text().splitlines()[0] if record.is_file() else f"seqlab charlm train --out {self.directory}"

    def best_held_out(self) -> tuple[int, float]:
        losses = self.history["val_loss"]
        index = min(range(len(losses)), key=losses.__getitem__)
        return index + 1, losses[index]

    def held_out_ids(self) -> torch.Tensor:
        text = load_text(self.settings)
        ids = torch.tensor(self.generator.vocabulary.encode(text), dtype=torch.long)
        return split_ids(ids, self.settings.val_fraction, self.settings.seq_len)[1]


@torch.no_grad()
def sliding_window_loss(model, ids: torch.Tensor, context: int, stride: int, batch_size: int = 32) -> float:
    """Mean −log p(next character) over `ids`, each scored once with ≥ context − stride characters before it
    (the first window scores all its positions; later ones their last `stride`)."""
    model.eval()
    starts = list(range(0, len(ids) - context, stride))
    total, count = 0.0, 0
    for first in range(0, len(starts), batch_size):
        batch = torch.stack([ids[s:s + context + 1] for s in starts[first:first + batch_size]])
        logits = model(batch[:, :-1])
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
        for row, start in enumerate(starts[first:first + batch_size]):
            scored = losses[row] if start == 0 else losses[row, -stride:]
            total, count = total + float(scored.sum()), count + scored.numel()
    return total / count


def charlm_rows(lstm: CharRun, transformer: CharRun) -> list[str]:
    """The comparison table, then a sentence on what it shows."""
    rows = ["| model | parameters | epochs run (best) | training time | held-out loss as trained (bits/char) | "
            "held-out loss, full context (bits/char) |", "|---|---:|---:|---:|---:|---:|"]
    full_context = {}
    for label, run in (("LSTM 1×512, stateful (the `best` preset)", lstm),
                       ("transformer 6 blocks × 128, 4 heads (the `transformer` preset)", transformer)):
        epoch, loss = run.best_held_out()
        if run is transformer:
            full = sliding_window_loss(run.generator.model, run.held_out_ids(), run.settings.seq_len,
                                       run.settings.seq_len // 2)
            full_text = f"{full:.4f} ({full / math.log(2):.4f})"
        else:
            full = loss
            full_text = f"{loss:.4f} ({loss / math.log(2):.4f}): the stateful loss is already full-context"
        minutes = sum(run.history.get("seconds", [])) / 60
        full_context[run] = full
        rows.append(f"| {label} | {run.parameters:,} | {len(run.history['loss'])} ({epoch}) | {minutes:.1f} min | "
                    f"{loss:.4f} ({loss / math.log(2):.4f}) | {full_text} |")
    still_improving = transformer.best_held_out()[0] == len(transformer.history["loss"])
    improving = "; the transformer was still improving when its time ran out" if still_improving else ""
    rows += ["", f"With the same budget and size the LSTM's held-out loss is "
             f"{full_context[transformer] - full_context[lstm]:.4f} nats/char below the transformer's "
             f"(full context){improving}. "
             "Generation speeds: [generation.md](generation.md) (`benchmarks/generation_speed.py`)."]
    return rows


def section(sentiment_runs: Path, lstm_dir: Path, transformer_dir: Path) -> str:
    torch.set_num_threads(1)
    lines = [MARKER, "", "## Transformers vs recurrent models on the applications", "",
             "Same data, same training loop, about the same number of parameters; one torch thread on the "
             "shared 2-core CPU (times are wall clock under load).", "",
             "### IMDb sentiment (official split: 25,000 training reviews, 25,000 test)", "",
             "Both read the last 200 word tokens of each review with a 20,000-word vocabulary (embedding 32, "
             "masked padding, length-bucketed batches of 32, dropout 0.1, Adam 1e-3, Dense(20, relu) head, early "
             "stopping on validation accuracy with patience 2, best weights kept). Commands: "
             "`seqlab sentiment train --preset transformer` and `seqlab sentiment train --preset transformer "
             "--arch rnn --cell lstm --pooling max`.", "", *sentiment_rows(sentiment_runs), ""]
    if (lstm_dir / "history.json").is_file() and (transformer_dir / "history.json").is_file():
        lstm, transformer = CharRun(lstm_dir), CharRun(transformer_dir)
        lines += ["### The Mysterious Island, character LM (held-out: the last 10% of the text)", "",
                  f"The LSTM reads {lstm.settings.batch_size} parallel streams in {lstm.settings.seq_len}-character "
                  "windows with the state carried across them (truncated BPTT); the transformer reads shuffled "
                  f"{transformer.settings.seq_len}-character windows with causal self-attention, learned positions "
                  "and pre-norm blocks. Both: Adam with global clipnorm 1, learning rate halved after an epoch "
                  "without a better held-out loss, early stopping (patience 3), a 40-minute budget. The "
                  "transformer's full-context loss scores each held-out character once with at least "
                  f"{transformer.settings.seq_len // 2} characters before it (sliding windows, stride "
                  f"{transformer.settings.seq_len // 2}).", "",
                  *charlm_rows(lstm, transformer), "",
                  f"Commands: `{lstm.command()}`, `{transformer.command()}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentiment-runs", type=Path, default=Path("runs/sentiment-results"))
    parser.add_argument("--lstm", type=Path, default=Path("runs/results/best-dropout0.4"),
                        help="the best LSTM run (docs/results/charlm.md)")
    parser.add_argument("--transformer", type=Path, default=Path("runs/results/transformer"))
    parser.add_argument("--write", type=Path, help="replace this file's section from the marker on (else print)")
    args = parser.parse_args(argv)
    text = section(args.sentiment_runs, args.lstm, args.transformer)
    if args.write is None:
        print(text)
        return 0
    existing = args.write.read_text() if args.write.is_file() else ""
    kept = existing.split(MARKER)[0].rstrip("\n")
    args.write.write_text((kept + "\n\n" if kept else "") + text)
    print(f"wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
