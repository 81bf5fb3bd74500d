"""`seqlab charlm train | generate | demo` on small texts: files written, held-out split, resume, streams, errors."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.apps import charlm
from seqlab.apps.charlm import CharVocabulary, Settings, build_model, chunk_batches, chunks, split_ids
from seqlab.data.epoch_batches import buffered_shuffle_order
from seqlab.training import time_budget
from seqlab.training.time_budget import TimeBudget
from seqlab.data import CharTokenizer, Vocabulary
from seqlab.generation import Sampling
from seqlab.saving import ModelDirectoryError, load_model

ENGLISH = ("The island was of volcanic origin. The engineer and the reporter climbed the mountain, "
           "while Pencroft and Herbert explored the shore. ") * 40
KOREAN = "사십에 가까운 노처녀인 그는 주근깨투성이 얼굴이 처녀다운 맛이란 약에 쓰려도 찾을 수 없었다. " * 40
TINY = ["--units", "16", "--embedding-dim", "8", "--seq-len", "20", "--batch-size", "16", "--threads", "1",
        "--verbose", "0"]


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="seqlab")
    charlm.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["charlm", *argv])
    return args.handler(args)


@pytest.fixture
def english(tmp_path):
    path = tmp_path / "island.txt"
    path.write_text(ENGLISH, encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, english):
    out = tmp_path / "run"
    assert run("train", "--text", str(english), *TINY, "--epochs", "2", "--out", str(out)) == 0
    return out


# ------------------------------------------------------------------- train
def test_train_writes_model_vocabulary_checkpoints_and_per_epoch_results(trained):
    for name in ("settings.json", "log.csv", "history.json", "model/config.json", "model/model.safetensors",
                 "checkpoints/last/training_state.json", "checkpoints/best/config.json"):
        assert (trained / name).is_file(), name
    config = json.loads((trained / "model" / "config.json").read_text())
    assert config["tokenizer"]["class_name"] == "CharVocabulary"
    saved_tokens = config["tokenizer"]["config"]["vocabulary"]["tokens"]
    assert sorted(saved_tokens) == sorted(set(ENGLISH))
    history = json.loads((trained / "history.json").read_text())["history"]
    assert len(history["loss"]) == 2 and history["val_loss"][1] < history["val_loss"][0]
    for split in ("", "val_"):
        for loss, bpc in zip(history[f"{split}loss"], history[f"{split}bpc"]):
            assert bpc == pytest.approx(loss / math.log(2), rel=1e-5)  # bits per character = nats / ln 2
    rows = list(csv.DictReader((trained / "log.csv").open()))
    assert [row["epoch"] for row in rows] == ["0", "1"] and float(rows[0]["seconds"]) > 0
    command = (trained / "command.txt").read_text()
    assert command.startswith("seqlab charlm train --text ") and "--epochs 2" in command


def test_held_out_part_is_the_contiguous_tail():
    ids = torch.arange(1000)
    train, held_out = split_ids(ids, 0.1, seq_len=40)
    assert torch.equal(train, ids[:900]) and torch.equal(held_out, ids[900:])
    with pytest.raises(ValueError, match="seq_len \\+ 1 = 41"):
        split_ids(torch.arange(300), 0.1, seq_len=40)


def test_chunks_are_the_tutorials_non_overlapping_41_character_windows():
    x, y = chunks(torch.arange(100), seq_len=40)
    assert x.shape == y.shape == (2, 40)
    assert x[1].tolist() == list(range(41, 81)) and y[1].tolist() == list(range(42, 82))


def test_buffered_shuffle_reads_like_tf_data_shuffle():
    rng = np.random.default_rng(0)
    assert buffered_shuffle_order(6, 1, rng).tolist() == list(range(6))  # a buffer of one keeps the order
    order = buffered_shuffle_order(1000, 10, np.random.default_rng(1))
    assert sorted(order.tolist()) == list(range(1000))
    assert all(item < position + 10 for position, item in enumerate(order))  # never ahead of the buffer
    assert order.tolist() != list(range(1000))
    full = buffered_shuffle_order(50, None, np.random.default_rng(2))
    assert sorted(full.tolist()) == list(range(50))
    batches = chunk_batches(torch.arange(10)[:, None], torch.arange(10)[:, None], batch_size=4, shuffle_buffer=3)
    first = [b[0].flatten().tolist() for b in batches]
    batches.set_epoch(1)
    assert [len(b) for b in first] == [4, 4, 2] and first != [b[0].flatten().tolist() for b in batches]


def test_book_preset_is_the_tutorials_model():
    model = build_model(82, Settings(**charlm.PRESETS["book"]))  # 80 characters + padding + unknown
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "LSTM", "Dense"]
    assert model.layers[1].units == 512 and model.layers[0].output_dim == 256
    # The tutorial's 1,636,432 for 80 classes, plus the padding and unknown rows of Embedding and Dense.
    assert model.count_params() == 1_636_432 + 2 * 256 + 2 * (512 + 1)
    settings = Settings()
    assert (settings.seq_len, settings.batch_size, settings.epochs, settings.shuffle_buffer) == (40, 64, 20, 10_000)


def test_options_override_the_preset():
    parser = argparse.ArgumentParser()
    charlm.add_parser(parser.add_subparsers())
    args = parser.parse_args(["charlm", "train", "--preset", "quick", "--units", "32", "--cell", "gru",
                              "--no-stateful"])
    settings = charlm.settings_from_args(args)
    assert (settings.units, settings.cell, settings.stateful) == (32, "gru", False)
    assert settings.embedding_dim == charlm.PRESETS["quick"]["embedding_dim"]


def test_resume_continues_from_the_last_checkpoint(trained, english):
    assert run("train", "--resume", "--epochs", "3", "--out", str(trained), "--threads", "1", "--verbose", "0") == 0
    rows = list(csv.DictReader((trained / "log.csv").open()))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    history = json.loads((trained / "history.json").read_text())
    assert history["epochs"] == [1, 2, 3] and len(history["history"]["val_loss"]) == 3
    commands = (trained / "command.txt").read_text().splitlines()
    assert len(commands) == 2 and "--resume" in commands[1]


def test_step_budget_stops_training(tmp_path, english):
    out = tmp_path / "budget"
    assert run("train", "--text", str(english), *TINY, "--epochs", "5", "--max-steps", "3", "--out", str(out)) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epochs"] == [1] and "step budget of 3" in history["stop_reason"]


def test_time_budget_prefers_whole_epochs(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(time_budget.time, "perf_counter", lambda: clock[0])
    budget = TimeBudget(max_minutes=1.0)
    budget.model, budget.params = argparse.Namespace(stop_training=False), {"epochs": 10}
    budget.on_train_begin()
    clock[0] = 25.0
    budget.on_epoch_end(0)  # 25 s per epoch: a second one ends at 50 s, within the minute
    assert not budget.model.stop_training
    clock[0] = 50.0
    budget.on_epoch_end(1)  # a third would end at 75 s
    assert budget.model.stop_training and "would overrun the time budget of 1 minutes" in budget.reason
    mid_epoch = TimeBudget(max_minutes=1.0)
    mid_epoch.model, mid_epoch.params = argparse.Namespace(stop_training=False), {"epochs": 10}
    mid_epoch.on_train_begin()
    clock[0] = 120.0
    mid_epoch.on_train_batch_end(0)
    assert mid_epoch.model.stop_training and "in the middle of an epoch" in mid_epoch.reason


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_stateful_stacked_training_and_generation(tmp_path, english, cell, capsys):
    out = tmp_path / cell
    assert run("train", "--text", str(english), *TINY, "--cell", cell, "--layers", "2", "--dropout", "0.2",
               "--stateful", "--epochs", "2", "--clip", "1.0", "--patience", "2", "--reduce-lr-patience", "1",
               "--out", str(out)) == 0
    history = json.loads((out / "history.json").read_text())["history"]
    assert history["learning_rate"][0] == pytest.approx(0.001)
    model = load_model(out / "model", compile=False)
    assert [type(layer).__name__ for layer in model.layers][1:4] == [{"gru": "GRU", "simple_rnn": "SimpleRNN"}[cell],
                                                                     "Dropout", {"gru": "GRU", "simple_rnn": "SimpleRNN"}[cell]]
    capsys.readouterr()
    assert run("generate", "--model", str(out), "--prime", "The", "--length", "30", "--seed", "1") == 0
    assert len(capsys.readouterr().out) == len("The") + 30 + 1


def test_train_errors_say_what_to_do(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("too short")
    assert run("train", "--text", str(short), *TINY, "--out", str(tmp_path / "x")) == 1
    assert "Use a longer text or a smaller --seq-len" in capsys.readouterr().err
    assert run("train", "--text", str(tmp_path / "missing.txt"), *TINY, "--out", str(tmp_path / "y")) == 1
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- generate
def test_generate_streams_only_the_text_to_stdout(trained, capsys):
    capsys.readouterr()
    assert run("generate", "--model", str(trained), "--prime", "The island", "--length", "50", "--seed", "3",
               "--scale-factor", "2.0") == 0
    first = capsys.readouterr()
    assert first.out.startswith("The island") and len(first.out) == len("The island") + 50 + 1
    assert set(first.out[:-1]) <= set(ENGLISH) and "characters/s" in first.err
    assert run("generate", "--model", str(trained / "model"), "--prime", "The island", "--length", "50",
               "--seed", "3", "--scale-factor", "2.0") == 0
    assert capsys.readouterr().out == first.out  # the same seed gives the same text
    assert run("generate", "--model", str(trained), "--prime", "The island", "--length", "50", "--seed", "3",
               "--temperature", "0.5") == 0
    assert capsys.readouterr().out == first.out  # temperature 0.5 is α = 2


def test_generate_several_samples_as_one_batch(trained, capsys):
    capsys.readouterr()
    assert run("generate", "--model", str(trained), "--prime", "The", "--length", "40", "--num-samples", "3",
               "--seed", "4", "--top-k", "5", "--top-p", "0.9") == 0
    captured = capsys.readouterr()
    samples = captured.out.splitlines()
    assert len(samples) == 3 and all(s.startswith("The") and len(s) == 43 for s in samples)
    assert "--- sample 3 of 3 ---" in captured.err and "---" not in captured.out
    generator = charlm.load_generator(trained)
    assert generator.generate("The", 40, Sampling(top_k=5, top_p=0.9), num_samples=3, seed=4) == samples


def test_generate_in_bfloat16(trained, capsys):
    capsys.readouterr()
    assert run("generate", "--model", str(trained), "--prime", "The", "--length", "40", "--num-samples", "2",
               "--seed", "4", "--precision", "bfloat16") == 0
    samples = capsys.readouterr().out.splitlines()
    assert len(samples) == 2 and all(s.startswith("The") and len(s) == 43 for s in samples)
    generator = charlm.load_generator(trained, precision="bfloat16")
    assert generator.generate("The", 40, Sampling(), num_samples=2, seed=4) == samples
    # the same draws from the float32 distributions: nearly the same text (a draw near a boundary may flip)
    float32 = charlm.load_generator(trained).generate("The", 40, Sampling(greedy=True), num_samples=1)[0]
    assert charlm.load_generator(trained, "bfloat16").generate("The", 40, Sampling(greedy=True))[0][:10] == float32[:10]


def test_greedy_generation_from_a_checkpoint(trained, capsys):
    capsys.readouterr()
    assert run("generate", "--model", str(trained / "checkpoints" / "best"), "--prime", "The", "--length", "20",
               "--greedy") == 0
    greedy = capsys.readouterr().out
    assert run("generate", "--model", str(trained / "checkpoints" / "best"), "--prime", "The", "--length", "20",
               "--greedy") == 0
    assert capsys.readouterr().out == greedy


def test_unknown_prime_characters_fail_before_any_output(trained, capsys):
    capsys.readouterr()
    assert run("generate", "--model", str(trained), "--prime", "Zébra", "--length", "10") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "'Z' (U+005A), 'é' (U+00E9)" in captured.err and "--allow-unknown" in captured.err
    assert run("generate", "--model", str(trained), "--prime", "Zébra", "--length", "10", "--allow-unknown",
               "--seed", "0") == 0
    assert capsys.readouterr().out.startswith("Zébra")


def test_generate_needs_a_charlm_model_directory(tmp_path, capsys):
    assert run("generate", "--model", str(tmp_path), "--length", "5") == 1
    assert "holds no model" in capsys.readouterr().err
    model = build_model(10, Settings(units=4, embedding_dim=2))
    model.save(tmp_path / "plain")
    with pytest.raises(ModelDirectoryError, match="no character vocabulary"):
        charlm.load_generator(tmp_path / "plain")


def test_vocabulary_travels_in_the_config():
    vocabulary = Vocabulary.build([KOREAN], tokenizer=CharTokenizer())
    restored = CharVocabulary.from_config(json.loads(json.dumps(CharVocabulary(vocabulary).get_config())))
    assert restored.vocabulary == vocabulary and restored.vocabulary.encode("사십") == vocabulary.encode("사십")


def test_korean_text_trains_and_generates_hangul(tmp_path, capsys):
    path = tmp_path / "novel.txt"
    path.write_text(KOREAN, encoding="utf-8")
    out = tmp_path / "korean"
    assert run("train", "--text", str(path), *TINY, "--epochs", "1", "--out", str(out)) == 0
    capsys.readouterr()
    assert run("generate", "--model", str(out), "--prime", "사십에", "--length", "30", "--seed", "0") == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("사십에") and len(text) == 33 and set(text) <= set(KOREAN)


# -------------------------------------------------------------------- demo
def test_demo_trains_saves_and_prints_three_scale_factors(tmp_path, english, capsys, monkeypatch):
    monkeypatch.setitem(charlm.PRESETS, "quick", {**charlm.PRESETS["quick"], "units": 16, "embedding_dim": 8,
                                                  "seq_len": 20, "batch_size": 8})
    out = tmp_path / "demo"
    assert run("demo", "--text", str(english), "--max-minutes", "0.02", "--length", "40", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    for scale_factor in ("2.0", "1.0", "0.5"):
        assert f"--- α = {scale_factor}" in printed
    assert printed.count("The island") >= 3 and (out / "model" / "config.json").is_file()
    assert "held-out loss" in printed


def test_koconovel_is_found_in_the_data_folder_or_named_as_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SEQLAB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="koconovel_50novels.txt.*a text file of your own"):
        charlm.load_text(Settings(corpus="koconovel"))
    (tmp_path / "koconovel").mkdir()
    (tmp_path / "koconovel" / "koconovel_50novels.txt").write_text("다른 글")
    with pytest.raises(ValueError, match="sha256 differs"):
        charlm.load_text(Settings(corpus="koconovel"))


def test_real_koconovel_text_when_available(monkeypatch):
    data = os.environ.get("SEQLAB_DATA_DIR")
    if not data or not (Path(data) / "koconovel" / "koconovel_50novels.txt").is_file():
        pytest.skip("KoCoNovel is not in $SEQLAB_DATA_DIR")
    text = charlm.load_text(Settings(corpus="koconovel"))
    assert (len(text), len(set(text))) == (707_152 - 134, 1_519 - 1)  # CRLF line ends read as "\n"


# ------------------------------------------------------------- transformer
def test_transformer_model_is_causal_blocks_between_embedding_and_logits():
    settings = Settings(**{**charlm.PRESETS["transformer"], "layers": 2, "embedding_dim": 16, "units": 32,
                           "heads": 2, "seq_len": 12})
    model = build_model(30, settings)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Embedding", "PositionEmbedding", "TransformerBlock", "TransformerBlock",
                     "LayerNormalization", "Dense"]
    assert all(block.causal and block.norm_first for block in model.layers[2:4])
    assert model.layers[1].sequence_length == 12
    # 30×16 + 12×16 + 2 × (4 × (16×16 + 16) + (16×32 + 32) + (32×16 + 16) + 2 × 32) + 32 + (16×30 + 30)
    assert model.count_params() == 480 + 192 + 2 * (1088 + 544 + 528 + 64) + 32 + 510
    ids = torch.randint(1, 30, (2, 12))
    model.eval()
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] % 29) + 1
    with torch.no_grad():  # a later character never changes an earlier prediction
        torch.testing.assert_close(model(ids)[:, :7], model(changed)[:, :7], rtol=0, atol=1e-6)
    best = build_model(82, Settings(**{**charlm.PRESETS["best"], "max_minutes": None}))
    preset = build_model(82, Settings(**charlm.PRESETS["transformer"]))
    assert abs(preset.count_params() / best.count_params() - 1) < 0.05  # "of the best LSTM's size"


def test_transformer_settings_errors():
    with pytest.raises(ValueError, match="no state to carry"):
        Settings(arch="transformer", stateful=True)
    with pytest.raises(ValueError, match="divisible by heads=3"):
        Settings(arch="transformer", embedding_dim=16, heads=3)
    with pytest.raises(ValueError, match="arch must be one of"):
        Settings(arch="cnn")


def test_transformer_trains_and_generates_from_its_window(tmp_path, english, capsys):
    out = tmp_path / "transformer"
    assert run("train", "--text", str(english), "--arch", "transformer", "--layers", "1", "--heads", "2",
               "--units", "32", "--embedding-dim", "16", "--seq-len", "20", "--batch-size", "16", "--threads",
               "1", "--verbose", "0", "--epochs", "2", "--lr", "0.005", "--out", str(out)) == 0
    history = json.loads((out / "history.json").read_text())["history"]
    assert history["val_loss"][1] < history["val_loss"][0] < math.log(len(set(ENGLISH)))
    capsys.readouterr()
    # 60 characters from a 20-character window: the window slides past the prime.
    assert run("generate", "--model", str(out), "--prime", "The island", "--length", "60", "--seed", "2") == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("The island") and len(text) == 70 and set(text) <= set(ENGLISH)
    generator = charlm.load_generator(out)
    assert generator.generate("The island", 60, Sampling(), seed=2) == [text]
    assert run("generate", "--model", str(out), "--prime", "The", "--length", "5", "--precision", "bfloat16") == 1
    assert "applies to recurrent models" in capsys.readouterr().err


def test_saved_model_generates_in_a_fresh_process(trained):
    """Everything needed to generate is in the model directory: a new interpreter loads it."""
    script = ("import sys; from seqlab.apps import charlm; from seqlab.generation import Sampling; "
              "print(charlm.load_generator(sys.argv[1]).generate('The', 30, Sampling(), seed=5)[0])")
    fresh = subprocess.run([sys.executable, "-c", script, str(trained)], capture_output=True, text=True,
                           check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    here = charlm.load_generator(trained).generate("The", 30, Sampling(), seed=5)[0]
    assert len(here) == 33 and fresh.stdout == here + "\n"
