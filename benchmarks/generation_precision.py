"""What bfloat16 generation changes: a trained character model's next-character distributions, float32 vs bfloat16.

Reads `--streams` windows of the held-out text (the last `val_fraction` of the
corpus the model was trained on, as `seqlab charlm train` splits it) one
character at a time through two `Stepper`s, float32 and
`precision="bfloat16"`, and prints a table: the mean loss on the next
character (nats) of each, the mean KL divergence KL(p_float32 || p_bfloat16)
per character, and how often both put the same character first.

    SEQLAB_DATA_DIR=../shared/datasets python benchmarks/generation_precision.py --model runs/results/best
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from seqlab.apps import charlm
from seqlab.generation.stepping import Stepper
from seqlab.saving import load_model


@torch.no_grad()
def compare(model, held_out: torch.Tensor, streams: int, steps: int) -> dict[str, float]:
    """Mean next-character loss of both precisions, their KL divergence, and top-1 agreement."""
    starts = torch.linspace(0, len(held_out) - steps - 2, streams).long()
    windows = torch.stack([held_out[start:start + steps + 1] for start in starts])  # (streams, steps + 1)
    exact, rounded = Stepper(model, streams), Stepper(model, streams, precision="bfloat16")
    totals = {"loss float32": 0.0, "loss bfloat16": 0.0, "KL": 0.0, "same first choice": 0.0}
    for t in range(steps):
        log_p = exact.step(windows[:, t]).log_softmax(-1)
        log_q = rounded.step(windows[:, t]).log_softmax(-1)
        following = windows[:, t + 1, None]
        totals["loss float32"] -= log_p.gather(1, following).mean().item()
        totals["loss bfloat16"] -= log_q.gather(1, following).mean().item()
        totals["KL"] += (log_p.exp() * (log_p - log_q)).sum(-1).mean().item()
        totals["same first choice"] += (log_p.argmax(-1) == log_q.argmax(-1)).float().mean().item()
    return {name: value / steps for name, value in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a `seqlab charlm train` OUT directory (recurrent model)")
    parser.add_argument("--streams", type=int, default=64, help="windows read at once (default 64)")
    parser.add_argument("--steps", type=int, default=500, help="characters per window (default 500)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    directory = charlm.resolve_model_dir(args.model)
    model = load_model(directory, compile=False).eval()
    settings = charlm.Settings(**json.loads((directory.parent / "settings.json").read_text()))
    ids = torch.tensor(model.tokenizer.vocabulary.encode(charlm.load_text(settings)), dtype=torch.long)
    _, held_out = charlm.split_ids(ids, settings.val_fraction, settings.seq_len)
    results = compare(model, held_out, args.streams, args.steps)
    print(f"{args.model}: {args.streams} held-out windows x {args.steps} characters\n")
    print("| loss float32 (nats/char) | loss bfloat16 | KL(float32 ‖ bfloat16) per char | same first choice |")
    print("|---:|---:|---:|---:|")
    print(f"| {results['loss float32']:.5f} | {results['loss bfloat16']:.5f} | {results['KL']:.2e} "
          f"| {results['same first choice']:.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
