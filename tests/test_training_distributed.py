"""Two CPU processes under torchrun (gloo) train like one process on the same global batch, and the
applications' train commands run under torchrun write their files and print their reports once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_charlm import ENGLISH
from test_charlm import TINY as CHARLM_TINY
from test_sentiment import write_reviews

REPO = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(f"""
    import json, sys
    from pathlib import Path
    sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
    from safetensors.torch import save_file
    from seqlab.seeding import set_seed
    from seqlab.training import Adam, BinaryCrossentropy, ModelCheckpoint, SparseCategoricalCrossentropy
    from seqlab.training.distributed import is_main_process
    from test_training_toys import SignOfSum, Tagger, copy_first_token_data, sign_of_sum_data

    def train(out):
        out = Path(out)
        runs = {{
            "sign": (lambda: SignOfSum(units=8), BinaryCrossentropy(from_logits=True), sign_of_sum_data(96)),
            # padded targets: the processes hold different numbers of real tokens per batch
            "tagger": (Tagger, SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                       copy_first_token_data(96)),
        }}
        for name, (make_model, loss, (x, y)) in runs.items():
            set_seed(0)
            model = make_model()
            model.compile(Adam(learning_rate=0.01), loss, metrics=["accuracy"], device="cpu")
            history = model.fit(x, y, batch_size=16, epochs=2, seed=3, validation_split=0.25, verbose=2,
                                callbacks=[ModelCheckpoint(out / name, monitor="val_loss")])
            if is_main_process():
                weights = {{k: v.contiguous() for k, v in model.state_dict().items()}}
                save_file(weights, str(out / f"{{name}}.safetensors"))
                (out / f"{{name}}.json").write_text(json.dumps(history.history))

    if __name__ == "__main__":
        train(sys.argv[1])
""")


# A clock-based callback (a time budget) may ask to stop on one process only; all must stop together.
ONE_RANK_STOPS = textwrap.dedent(f"""
    import sys
    from pathlib import Path
    sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
    import torch.distributed as dist
    from seqlab.training import BinaryCrossentropy, Callback
    from test_training_toys import SignOfSum, sign_of_sum_data

    class StopOnRankOne(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if dist.get_rank() == 1 and batch == 2:
                self.model.stop_training = True

    model = SignOfSum(units=4)
    model.compile("adam", BinaryCrossentropy(from_logits=True), device="cpu")
    x, y = sign_of_sum_data(160)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[StopOnRankOne()])
    Path(sys.argv[1], f"steps{{dist.get_rank()}}").write_text(str(model.optimizer.iterations))
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _results(directory: Path, name: str) -> tuple[dict, dict]:
    return load_file(str(directory / f"{name}.safetensors")), json.loads((directory / f"{name}.json").read_text())


def _torchrun(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 ARGUMENTS` on CPU (gloo), run in `cwd`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *arguments],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert launched.returncode == 0, launched.stderr[-3000:]
    return launched


def _lines_starting(text: str, start: str) -> int:
    return sum(line.startswith(start) for line in text.splitlines())


needs_distributed = pytest.mark.skipif(not torch.distributed.is_available(),
                                       reason="this torch build has no torch.distributed")


@needs_distributed
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    launched = _torchrun(str(script), str(tmp_path / "two"), cwd=tmp_path)

    namespace: dict = {}
    exec(compile(WORKER, str(script), "exec"), namespace)
    namespace["train"](tmp_path / "one")

    for name in ("sign", "tagger"):
        two_weights, two_history = _results(tmp_path / "two", name)
        one_weights, one_history = _results(tmp_path / "one", name)
        for key, value in one_weights.items():
            torch.testing.assert_close(two_weights[key], value, rtol=1e-5, atol=1e-5, msg=f"{name}: {key}")
        assert list(two_history) == list(one_history)
        for key, values in one_history.items():
            assert two_history[key] == pytest.approx(values, rel=1e-5, abs=1e-6), (name, key)
        assert (tmp_path / "two" / name / "last" / "model.safetensors").is_file()
    # only rank 0 reports: one line per epoch per model
    assert launched.stderr.count("Epoch 1/2") == 2, launched.stderr[-3000:]


@needs_distributed
def test_charlm_train_under_torchrun_writes_and_reports_once(tmp_path):
    (tmp_path / "island.txt").write_text(ENGLISH, encoding="utf-8")
    launched = _torchrun("-m", "seqlab", "charlm", "train", "--text", "island.txt", *CHARLM_TINY,
                         "--epochs", "2", "--verbose", "2", "--out", "run", cwd=tmp_path)
    run = tmp_path / "run"
    for name in ("settings.json", "command.txt", "log.csv", "history.json", "model/model.safetensors",
                 "checkpoints/best/config.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob("*.tmp"))
    assert (run / "command.txt").read_text().count("seqlab charlm train") == 1
    history = json.loads((run / "history.json").read_text())
    assert history["epochs"] == [1, 2] and history["history"]["val_loss"][1] < history["history"]["val_loss"][0]
    assert len((run / "log.csv").read_text().splitlines()) == 3  # the header and two epochs
    for start in ("Text: ", "Model: ", "Epoch 1/2", "Epoch 2/2", "Saved "):
        assert _lines_starting(launched.stderr, start) == 1, (start, launched.stderr[-3000:])
    assert _lines_starting(launched.stdout, "Held-out loss after epoch 2") == 1, launched.stdout


@needs_distributed
def test_sentiment_train_under_torchrun_writes_and_reports_once(tmp_path):
    write_reviews(tmp_path / "tiny.csv")
    launched = _torchrun("-m", "seqlab", "sentiment", "train", "--dataset", "csv:tiny.csv", "--text-column", "review",
                         "--label-column", "sentiment", "--embedding-dim", "8", "--units", "8", "--dense-units", "0",
                         "--epochs", "3", "--lr", "0.02", "--verbose", "2", "--threads", "1", "--out", "run",
                         cwd=tmp_path)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "last" / "training_state.json").is_file()
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 4  # the header and three epochs
    assert (tmp_path / "run" / "command.txt").read_text().count("seqlab sentiment train") == 1
    assert summary["epochs_run"] == 3 and summary["test"]["count"] == 24
    for start in (f"{tmp_path / 'tiny.csv'} (", "vocabulary ", "Epoch 1/3", "Epoch 3/3", "Saved "):
        assert _lines_starting(launched.stderr, start) == 1, (start, launched.stderr[-3000:])
    assert _lines_starting(launched.stdout, "Test accuracy") == 1, launched.stdout


@needs_distributed
def test_a_stop_asked_by_one_process_stops_every_process_at_the_same_step(tmp_path):
    script = tmp_path / "stop.py"
    script.write_text(ONE_RANK_STOPS)
    _torchrun(str(script), str(tmp_path), cwd=tmp_path)
    assert (tmp_path / "steps0").read_text() == (tmp_path / "steps1").read_text() == "3"
