"""The `seqlab` command's own subcommands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


import seqlab
from seqlab import layers
from seqlab.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_summary_of_a_saved_model(tmp_path, capsys):
    model = seqlab.Sequential([layers.Embedding(50, 4), layers.LSTM(3), layers.Dense(1)])
    model.build((None, None))
    model.save(tmp_path / "model")
    assert main(["summary", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out
    assert "lstm (LSTM)" in out and f"Total params: {model.count_params():,}" in out


def test_summary_of_a_missing_directory_names_it(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_python_dash_m_seqlab_is_the_seqlab_command(capsys):
    assert main(["version"]) == 0
    expected = capsys.readouterr().out
    launched = subprocess.run([sys.executable, "-m", "seqlab", "version"], capture_output=True, text=True, timeout=120,
                              cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout == expected and expected.startswith(f"seqlab {seqlab.__version__} (torch ")
    no_command = subprocess.run([sys.executable, "-m", "seqlab"], capture_output=True, text=True, timeout=120,
                                cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert no_command.returncode == 2 and "usage: seqlab" in no_command.stderr
