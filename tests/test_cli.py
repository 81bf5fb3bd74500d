"""The `seqlab` command's own subcommands."""

from __future__ import annotations

import numpy as np

import seqlab
from seqlab import layers
from seqlab.cli import main


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
