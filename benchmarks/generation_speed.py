"""Characters per second of the character LMs' generation: the cached transformer against re-reading the window
and against the LSTM (a benchmark, not a test).

Builds the `transformer` preset (6 causal blocks × 128, 4 heads, 128 learned
positions) and the `best` preset (LSTM 1×512) of `seqlab charlm` for a
vocabulary of `--vocabulary` characters. Their weights are freshly
initialized: the time of a step does not depend on the weights' values. Each
generates `--length` characters after a 40-character prime with the course's
scale-factor sampling (α = 2), on 1 and on 64 streams, best of `--repeats`;
characters/s = streams × length / seconds. `--length 500` crosses the
transformer's 128-position window several times, so the re-priming that
keeps the window bounded is in the time.

    python benchmarks/generation_speed.py --threads 1 --write docs/results/generation.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from seqlab.apps.charlm.model import build_model
from seqlab.apps.charlm.settings import PRESETS, Settings
from seqlab.generation import CachedStepper, Sampling, WindowStepper, generate_steps, stepper_for


def speed(make_stepper, streams: int, length: int, repeats: int) -> float:
    """Characters per second: the best of `repeats` runs of `length` steps on `streams` streams."""
    prime = torch.randint(1, 70, (streams, 40), generator=torch.Generator().manual_seed(0))
    best = float("inf")
    for repeat in range(repeats):
        generator = torch.Generator().manual_seed(repeat)
        started = time.perf_counter()
        for _ in generate_steps(make_stepper(streams), prime, length, Sampling(scale_factor=2.0), generator,
                                forbidden=(0,)):
            pass
        best = min(best, time.perf_counter() - started)
    return streams * length / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocabulary", type=int, default=80, help="characters (The Mysterious Island has 80)")
    parser.add_argument("--write", help="write the page (markdown) here as well as printing it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {}
    for preset in ("transformer", "best"):
        model = build_model(args.vocabulary, Settings(**PRESETS[preset]))
        model.build((None, None))
        models[preset] = model.eval()
    transformer, lstm = models["transformer"], models["best"]
    rows = [("transformer, key/value caches (`CachedStepper`, the default)", lambda n: CachedStepper(transformer)),
            ("transformer, re-reading the last 128 characters (`WindowStepper`)",
             lambda n: WindowStepper(transformer, 128)),
            ("LSTM 1×512 (`Stepper`)", lambda n: stepper_for(lstm, n))]
    command = " ".join(["python", "benchmarks/generation_speed.py", *sys.argv[1:]])
    lines = ["# Generation speed of the character LMs", "",
             "Produced by `benchmarks/generation_speed.py` (the module docstring says what it measures): "
             f"{_cpu()}, torch {torch.__version__}, {args.threads} torch thread(s), {args.length} characters after "
             f"a 40-character prime with scale-factor sampling (α = 2), best of {args.repeats}.", "",
             "| model | 1 stream (chars/s) | 64 streams (chars/s) |", "|---|---:|---:|"]
    for name, make in rows:
        one, many = (speed(make, streams, args.length, args.repeats) for streams in (1, 64))
        lines.append(f"| {name} | {one:,.0f} | {many:,.0f} |")
        print(lines[-1], flush=True)
    lines += ["", f"Command: `{command}`"]
    if args.write:
        Path(args.write).write_text("\n".join(lines) + "\n")


def _cpu() -> str:
    """The CPU's model name (Linux), else the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
