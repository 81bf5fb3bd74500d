"""Recurrent speed benchmark: seqlab vs torch native vs a per-step Python loop (vs Keras/TF).

Configs (median ms per training step = forward + loss + backward + Adam):
  A      Embedding(80,256) → LSTM(512, seq) → Dense(80); batch 64 × 40
  A-GRU  the same with GRU(512)
  B      Embedding(20000,20) → Bidirectional(LSTM(64)) → Dense(64, relu) → Dense(1, sigmoid); batch 32 × 200
  B-GRU  the same with GRU(64)
  B-RD   B with recurrent_dropout=0.2
  C      B with Bidirectional(SimpleRNN(64)); batch 32 × 100
  PAD    B's model on a padded batch (lengths 20-400) with mask_zero=True vs the same batch unmasked
  PAD-LAYER  the Bidirectional(LSTM(64)) layer alone on that batch (forward + backward), masked vs
         unmasked, and the native kernel's cost per step by rows running: the floor a mask can reach
  D      generate 500 characters with A's model: batch 1 and 64 streams (characters/s), in float32
         and with bfloat16 recurrent products (Stepper(precision="bfloat16"))
  MEM    peak memory of A's training step (seqlab vs torch native, separate processes):
         the peak resident size during 3 steps minus the resident size just before them

The peers run interleaved (one step each per round, in a shuffled order) so machine noise hits all alike.
Run: `python benchmarks/bench_rnn.py` (all) or `--configs A,B,D`. Keras/TF joins when
tensorflow is installed (`--no-keras` to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import seqlab
from seqlab import kernels, layers
from seqlab.generation import draw
from seqlab.generation.stepping import Stepper
from seqlab.kernels import fused
from seqlab.kernels.allocator import keep_freed_memory

Step = Callable[[], None]


# --------------------------------------------------------------------------- models
def seqlab_model(config: str, masked: bool = False) -> seqlab.Sequential:
    if config.startswith("A"):
        cell = layers.GRU if config == "A-GRU" else layers.LSTM
        model = seqlab.Sequential([layers.Embedding(80, 256), cell(512, return_sequences=True), layers.Dense(80)])
    else:
        recurrent = {"B": lambda: layers.LSTM(64), "B-GRU": lambda: layers.GRU(64),
                     "B-RD": lambda: layers.LSTM(64, recurrent_dropout=0.2), "C": lambda: layers.SimpleRNN(64),
                     "PAD": lambda: layers.LSTM(64)}[config]()
        model = seqlab.Sequential([layers.Embedding(20000, 20, mask_zero=masked), layers.Bidirectional(recurrent),
                                   layers.Dense(64, activation="relu"), layers.Dense(1, activation="sigmoid")])
    model.build((None, None))
    return model


class TorchCharModel(nn.Module):
    def __init__(self, cell: type[nn.Module]):
        super().__init__()
        self.embedding, self.rnn, self.dense = nn.Embedding(80, 256), cell(256, 512, batch_first=True), nn.Linear(512, 80)

    def forward(self, ids):
        return self.dense(self.rnn(self.embedding(ids))[0])


class TorchClassifier(nn.Module):
    def __init__(self, cell: type[nn.Module]):
        super().__init__()
        self.embedding = nn.Embedding(20000, 20)
        self.rnn = cell(20, 64, batch_first=True, bidirectional=True)
        self.hidden, self.out = nn.Linear(128, 64), nn.Linear(64, 1)

    def forward(self, ids):
        _, state = self.rnn(self.embedding(ids))
        h = state[0] if isinstance(state, tuple) else state
        return torch.sigmoid(self.out(torch.relu(self.hidden(torch.cat([h[0], h[1]], dim=-1)))))


def torch_model(config: str) -> nn.Module:
    cell = {"A": nn.LSTM, "A-GRU": nn.GRU, "B": nn.LSTM, "B-GRU": nn.GRU, "C": nn.RNN}[config]
    return TorchCharModel(cell) if config.startswith("A") else TorchClassifier(cell)


def keras_model(config: str):
    import keras

    if config.startswith("A"):
        cell = keras.layers.GRU if config == "A-GRU" else keras.layers.LSTM
        model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(80, 256),
                                  cell(512, return_sequences=True), keras.layers.Dense(80)])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        recurrent = {"B": lambda: keras.layers.LSTM(64), "B-GRU": lambda: keras.layers.GRU(64),
                     "B-RD": lambda: keras.layers.LSTM(64, recurrent_dropout=0.2),
                     "C": lambda: keras.layers.SimpleRNN(64)}[config]()
        model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(20000, 20),
                                  keras.layers.Bidirectional(recurrent), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        loss = "binary_crossentropy"
    model.compile(optimizer="adam", loss=loss, jit_compile=True)
    return model


# ---------------------------------------------------------------------- the steps
def batch_for(config: str, generator: torch.Generator):
    if config.startswith("A"):
        return torch.randint(0, 80, (64, 40), generator=generator), torch.randint(0, 80, (64, 40), generator=generator)
    time_steps = 100 if config == "C" else 200
    return (torch.randint(1, 20000, (32, time_steps), generator=generator),
            torch.randint(0, 2, (32,), generator=generator).float())


def loss_for(config: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if config.startswith("A"):
        return F.cross_entropy(outputs.reshape(-1, 80), targets.reshape(-1))
    return F.binary_cross_entropy(outputs.squeeze(-1), targets)


def torch_step(config: str, model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> Step:
    optimizer = torch.optim.Adam(model.parameters(), eps=1e-7)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_for(config, model(ids), targets).backward()
        optimizer.step()

    return step


def keras_step(config: str, ids: torch.Tensor, targets: torch.Tensor) -> Step:
    model = keras_model(config)
    x, y = ids.numpy().astype("int32"), targets.numpy()
    return lambda: model.train_on_batch(x, y)


def peers_for(config: str, use_keras: bool) -> dict[str, Step]:
    generator = torch.Generator().manual_seed(0)
    ids, targets = batch_for(config, generator)
    fast, loop = seqlab_model(config), seqlab_model(config)
    kernels.force_execution(loop, "reference")
    peers = {"seqlab": torch_step(config, fast, ids, targets)}
    # seqlab's two fast paths forced, whichever "auto" picked: B-RD has only the C++ loop (no native kernel
    # computes recurrent dropout), which "auto" runs
    forced = {"seqlab C++ loop": "fused", "seqlab native kernel": "native"} if config != "B-RD" else {}
    for name, path in forced.items():
        if path == "fused" and not fused.available():
            continue
        model = seqlab_model(config)
        kernels.force_execution(model, path)
        peers[name] = torch_step(config, model, ids, targets)
    if config in ("A", "A-GRU", "B", "B-GRU", "C"):
        peers["torch native"] = torch_step(config, torch_model(config), ids, targets)
    peers["python loop"] = torch_step(config, loop, ids, targets)
    if use_keras:
        peers["keras/tf (xla)"] = keras_step(config, ids, targets)
    return peers


def padded_peers() -> tuple[dict[str, Step], float]:
    """B's model on one padded batch, masked and unmasked; also the fraction of real tokens."""
    ids, targets, lengths = padded_batch()
    peers = {"seqlab masked": torch_step("PAD", seqlab_model("PAD", masked=True), ids, targets),
             "seqlab unmasked": torch_step("PAD", seqlab_model("PAD"), ids, targets)}
    if fused.available():
        compiled = seqlab_model("PAD", masked=True)
        kernels.force_execution(compiled, "fused")
        peers["seqlab masked, C++ loop"] = torch_step("PAD", compiled, ids, targets)
    return peers, lengths.sum().item() / (32 * 400)


def padded_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PAD's batch: ids (32, 400) right-padded with 0 at lengths 20-400, targets (32,), lengths (32,)."""
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(20, 401, (32,), generator=generator)
    ids = torch.randint(1, 20000, (32, 400), generator=generator)
    ids = ids.masked_fill(torch.arange(400)[None] >= lengths[:, None], 0)
    return ids, torch.randint(0, 2, (32,), generator=generator).float(), lengths


def padded_layer_peers() -> dict[str, Step]:
    """PAD's recurrent layer alone: forward + backward of Bidirectional(LSTM(64)), masked and unmasked."""
    _, _, lengths = padded_batch()
    mask = torch.arange(400)[None] < lengths[:, None]
    features = torch.randn(32, 400, 20, generator=torch.Generator().manual_seed(2), requires_grad=True)
    layer = layers.Bidirectional(layers.LSTM(64))
    layer.build((None, None, 20))
    return {"layer masked": lambda: layer(features, mask=mask).sum().backward(),
            "layer unmasked": lambda: layer(features).sum().backward()}


def kernel_cost_by_rows(rounds: int) -> dict[str, float]:
    """µs per step (forward + backward) of PyTorch's native LSTM(64) kernel on 200 steps of 20 features."""
    lstm = nn.LSTM(20, 64, batch_first=True)

    def run(rows: int) -> Step:
        x = torch.randn(rows, 200, 20, requires_grad=True)
        return lambda: lstm(x)[0].sum().backward()

    times = interleave({f"{rows} rows": run(rows) for rows in (1, 8, 16, 32)}, rounds)
    return {name: value * 1000 / 200 for name, value in times.items()}


def interleave(peers: dict[str, Step], rounds: int, warmup: int = 3) -> dict[str, float]:
    """Median ms per call of each peer, calling each once per round, in an order shuffled every round
    (seeded): a peer can slow the one after it (Keras/TF's threads keep working for a while after its
    step; in a fixed order the peer after it ran up to 2x slower in run 10), so no peer always follows
    the same one."""
    for step in peers.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in peers}
    order, shuffler = list(peers), random.Random(0)
    for _ in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            step = peers[name]
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


# --------------------------------------------------------------------- generation
def generation_rates(length: int = 500) -> dict[str, float]:
    """Characters per second for A's model: seqlab's stepper vs torch's stateful nn.LSTM vs the tutorial."""
    model = seqlab_model("A")
    model.eval()
    rates = {}
    for batch in (1, 64):  # seqlab's own sampler, as `seqlab charlm generate` draws
        stepper = Stepper(model, batch_size=batch)
        rates[f"seqlab stepper, batch {batch}"] = _sample_rate(stepper.step, batch, length, draw)
        stepper = Stepper(model, batch_size=batch, precision="bfloat16")
        rates[f"seqlab stepper bfloat16, batch {batch}"] = _sample_rate(stepper.step, batch, length, draw)
    native = TorchCharModel(nn.LSTM).eval()
    state: list = [None]

    def native_step(ids):
        output, state[0] = native.rnn(native.embedding(ids[:, None]), state[0])
        return native.dense(output[:, 0])

    rates["torch nn.LSTM stateful, batch 1"] = _sample_rate(native_step, 1, length)
    window = torch.zeros(1, 40, dtype=torch.long)

    def tutorial_step(ids):  # the tutorial's sample(): the last 40 characters through the model again
        nonlocal window
        window = torch.cat([window[:, 1:], ids[:, None]], dim=1)
        return model(window)[:, -1]

    rates["tutorial window re-run, batch 1"] = _sample_rate(tutorial_step, 1, length)
    return rates


def _multinomial(probabilities: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)


@torch.no_grad()
def _sample_rate(step: Callable[[torch.Tensor], torch.Tensor], batch: int, length: int,
                 sample: Callable[[torch.Tensor, torch.Generator], torch.Tensor] = _multinomial) -> float:
    generator = torch.Generator().manual_seed(0)
    ids = torch.zeros(batch, dtype=torch.long)
    for _ in range(20):
        step(ids)
    start = time.perf_counter()
    for _ in range(length):
        ids = sample(torch.softmax(step(ids), dim=-1), generator)
    return batch * length / (time.perf_counter() - start)


# ------------------------------------------------------------------------- memory
MEMORY_PROBE = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from benchmarks.bench_rnn import batch_for, seqlab_model, torch_model, torch_step
from seqlab.kernels.allocator import keep_freed_memory
keep_freed_memory()  # both peers with the allocator setting seqlab's training uses
model = seqlab_model("A") if sys.argv[1] == "seqlab" else torch_model("A")
ids, targets = batch_for("A", torch.Generator().manual_seed(0))
step = torch_step("A", model, ids, targets)
def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))
before = status_kib("VmRSS")  # model, optimizer and batch allocated; no step taken yet
try:  # reset the peak (VmHWM) to the present size: imports and setup must not count
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    peak = lambda: status_kib("VmHWM")
except OSError:  # no way to reset it: the lifetime peak
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(3):
    step()
print(peak() - before)
"""


def peak_memory_mib() -> dict[str, float]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = MEMORY_PROBE.format(root=root)
    result = {}
    for who in ("seqlab", "torch native"):
        out = subprocess.run([sys.executable, "-c", code, who.split()[0]], capture_output=True, text=True, check=True)
        result[who] = int(out.stdout.strip().splitlines()[-1]) / 1024
    return result


# -------------------------------------------------------------------------- report
def print_table(title: str, results: dict[str, float], unit: str, lower_is_better: bool = True) -> None:
    print(f"\n### {title}\n")
    print(f"| peer | {unit} | seqlab / peer |")
    print("|---|---|---|")
    ours = next(iter(results.values()))
    for name, value in results.items():
        ratio = ours / value if lower_is_better else value / ours
        print(f"| {name} | {value:,.1f} | {ratio:.2f}x |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="A,A-GRU,B,B-GRU,B-RD,C,PAD,D,MEM")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    use_keras = not args.no_keras and _keras_available()
    fused.available()  # build or load the C++ loop before timing anything
    tuned = keep_freed_memory()  # as seqlab's fit does; every peer shares the process (SEQLAB_MALLOC_TUNING=0: off)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), seqlab {seqlab.__version__}, glibc keeps freed memory: {tuned}"
          + (", keras/tf present" if use_keras else ""))
    for config in args.configs.split(","):
        if config == "D":
            print_table("D: generate 500 characters (A's model)", generation_rates(), "characters/s",
                        lower_is_better=False)
        elif config == "MEM":
            print_table("MEM: peak memory growth of A's training step", peak_memory_mib(), "MiB")
        elif config == "PAD":
            peers, real_fraction = padded_peers()
            print_table(f"PAD: padded batch, lengths 20-400 ({real_fraction:.0%} real tokens), mask on vs off",
                        interleave(peers, args.rounds), "ms/step")
        elif config == "PAD-LAYER":
            print_table("PAD-LAYER: Bidirectional(LSTM(64)) alone, forward + backward, mask on vs off",
                        interleave(padded_layer_peers(), args.rounds), "ms")
            by_rows = kernel_cost_by_rows(args.rounds)
            print_table("PAD-LAYER: native LSTM(64) kernel, cost per step by rows running", by_rows, "µs/step")
            fixed, per_row = _line_through(by_rows["1 rows"], 1, by_rows["32 rows"], 32)
            _, _, lengths = padded_batch()
            floor = (400 * fixed + per_row * lengths.sum().item()) / (400 * (fixed + 32 * per_row))
            print(f"\nfixed {fixed:.1f} µs per step + {per_row:.2f} µs per row: even skipping every padded "
                  f"row-step, this kernel costs at least {floor:.2f}x its unmasked time on this batch")
        else:
            print_table(f"{config}: training step", interleave(peers_for(config, use_keras), args.rounds), "ms/step")


def _line_through(y0: float, x0: float, y1: float, x1: float) -> tuple[float, float]:
    """Intercept and slope of the line through (x0, y0) and (x1, y1)."""
    slope = (y1 - y0) / (x1 - x0)
    return y0 - slope * x0, slope


def _keras_available() -> bool:
    try:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
