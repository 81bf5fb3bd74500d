"""Two CPU processes under torchrun (gloo) train like one process on the same global batch."""

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _results(directory: Path, name: str) -> tuple[dict, dict]:
    return load_file(str(directory / f"{name}.safetensors")), json.loads((directory / f"{name}.json").read_text())


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONWARNINGS": "ignore"}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script), str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=240)
    assert launched.returncode == 0, launched.stderr[-3000:]

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
