"""`kill -9` at random points, checkpoint writes included, then `--resume` until done: the end is bit for bit
the end of a run never interrupted (issue 22), for all three apps' `train`.

Each app trains a tiny model for `EPOCHS` short epochs in a fresh process
(`python -m seqlab ...`). Every attempt is killed with SIGKILL: on odd
attempts the moment a checkpoint's staging directory appears (mid-write), on
even ones at a random time within an epoch after the run has made progress.
The next attempt resumes; the last one is let finish. Then the final weights,
the best checkpoint's (charlm keeps one) and the per-epoch log must equal
those of an uninterrupted run's.
"""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_bad_inputs_commands import TRAIN, write_data

EPOCHS = 12
KILLS_PER_APP = 8


def command(app: str, work: Path, out: Path, resume: bool) -> list[str]:
    argv = [a.format(work=work) for a in TRAIN[app]]
    argv[argv.index("--epochs") + 1] = str(EPOCHS)
    return [sys.executable, "-m", "seqlab", *argv, "--out", str(out), *(["--resume"] if resume else [])]


def epochs_logged(out: Path) -> int:
    try:
        return max(0, len((out / "log.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def staging_entries(out: Path) -> list[str]:
    """Hidden entries a write in progress leaves: `.last.saving-*` directories and `.*.tmp` files."""
    found = []
    for folder in (out, out / "checkpoints", out / "model"):
        try:
            found += [name for name in os.listdir(folder) if name.startswith(".")]
        except FileNotFoundError:
            pass
    return found


def checkpoint_writes(out: Path) -> list[str]:
    """The staging directories of checkpoints or a model being written: `.last.saving-*`, `.model.saving-*`."""
    return [name for name in staging_entries(out) if ".saving-" in name and "replaced-run" not in name]


def kill_once(process: subprocess.Popen, out: Path, rng: random.Random, mid_write: bool) -> tuple[bool, bool]:
    """Kill `process` as chosen; returns (killed, whether a checkpoint was being written at the kill)."""
    start_epochs, deadline = epochs_logged(out), time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if mid_write:
            if checkpoint_writes(out):
                break
        elif epochs_logged(out) > start_epochs:
            time.sleep(rng.uniform(0.0, 0.05))  # somewhere in the next epoch (or its checkpoint)
            break
        time.sleep(0.0005)
    if process.poll() is not None:
        return False, False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True, bool(checkpoint_writes(out))  # still there after the kill: the write was cut short


def final_state(out: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
    """The final weights (and, where the app keeps one, the best checkpoint's, as `best/NAME`) and the log."""
    weights = load_file(out / "model" / "model.safetensors")
    best = out / "checkpoints" / "best" / "model.safetensors"
    if best.is_file():
        weights.update({f"best/{name}": tensor for name, tensor in load_file(best).items()})
    with open(out / "log.csv") as file:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(file)]
    return weights, rows


# The embeddings app trains a tiny corpus in milliseconds an epoch, too fast to kill in mid-epoch reliably; its
# resume is held exact in tests/test_embeddings_app.py.
@pytest.mark.parametrize("app", [app for app in TRAIN if app != "embeddings"])
def test_kill_9_at_random_points_then_resume_ends_bit_for_bit_where_an_uninterrupted_run_ends(tmp_path, app):
    write_data(tmp_path)
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    reference = tmp_path / "reference"
    done = subprocess.run(command(app, tmp_path, reference, False), env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    out, rng = tmp_path / "killed", random.Random(f"issue-22-{app}")
    kills = kills_mid_write = attempts = 0
    while True:
        resume = (out / "settings.json").is_file()
        process = subprocess.Popen(command(app, tmp_path, out, resume), env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        attempts += 1
        if kills < KILLS_PER_APP:
            killed, in_write = kill_once(process, out, rng, mid_write=kills % 2 == 0)
            kills += killed
            kills_mid_write += killed and in_write
            if killed:
                continue
        error = process.communicate(timeout=300)[1].decode()
        assert process.returncode == 0, error
        break
    print(f"{app}: {kills} kills ({kills_mid_write} during a write), {attempts} attempts")
    assert kills == KILLS_PER_APP and kills_mid_write >= KILLS_PER_APP // 4

    weights, rows = final_state(out)
    expected_weights, expected_rows = final_state(reference)
    assert sorted(weights) == sorted(expected_weights)
    assert all(torch.equal(weights[name], expected_weights[name]) for name in weights)
    assert rows == expected_rows and len(rows) == EPOCHS
    assert not staging_entries(out)  # what a killed write left was tidied by the next one


def test_ctrl_c_stops_a_run_with_a_resume_hint_and_the_resume_finishes_it(tmp_path):
    write_data(tmp_path)
    out = tmp_path / "run"
    process = subprocess.Popen(command("sentiment", tmp_path, out, False), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while epochs_logged(out) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    error = process.communicate(timeout=120)[1]
    assert process.returncode == 130, error
    assert "Traceback" not in error and len(error.strip().splitlines()[-1]) < 300
    assert re.search(r"Interrupted\. The last completed epoch \(\d+\) is saved in .*checkpoints/last; continue "
                     r"with: seqlab sentiment train --resume --out ", error), error
    resumed = subprocess.run(command("sentiment", tmp_path, out, True), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert epochs_logged(out) == EPOCHS
