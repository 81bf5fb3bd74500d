"""A save writes only the files seqlab owns, atomically; what it reads back is checked (issue 22)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from seqlab import layers
from seqlab.files import is_leftover, owned_directory, write_atomically
from seqlab.model import Sequential
from seqlab.saving import (CONFIG_FILE, OWNED_FILES, WEIGHTS_FILE, ModelDirectoryError, ModelOwnershipError,
                           load_model, save_model)


def small_model() -> Sequential:
    torch.manual_seed(0)
    model = Sequential([layers.Embedding(20, 4), layers.LSTM(3), layers.Dense(1)])
    model.build((None, 5))
    return model


def test_a_users_files_and_folders_in_a_model_directory_survive_every_save(tmp_path):
    directory = tmp_path / "model"
    model = small_model()
    save_model(model, directory)
    (directory / "NOTES.md").write_text("my notes")
    (directory / "notes.json").write_text('{"k": 1}')
    (directory / "plots").mkdir()
    (directory / "plots" / "loss.png").write_bytes(b"\x89PNG")
    inode = (directory / "NOTES.md").stat().st_ino
    save_model(model, directory)
    save_model(model, directory)
    assert (directory / "NOTES.md").read_text() == "my notes"
    assert (directory / "NOTES.md").stat().st_ino == inode  # the same file, not a copy
    assert (directory / "notes.json").read_text() == '{"k": 1}'
    assert (directory / "plots" / "loss.png").read_bytes() == b"\x89PNG"
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        ["NOTES.md", "notes.json", "plots", CONFIG_FILE, WEIGHTS_FILE])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_saving_over_a_regular_file_is_refused_and_the_file_is_untouched(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    with pytest.raises(ModelOwnershipError, match="it is a file, not a directory"):
        save_model(small_model(), target)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


def test_a_config_json_seqlab_did_not_write_is_not_overwritten(tmp_path):
    (tmp_path / CONFIG_FILE).write_text('{"name": "my app settings"}')
    with pytest.raises(ModelOwnershipError, match="is not a model seqlab wrote"):
        save_model(small_model(), tmp_path)
    assert json.loads((tmp_path / CONFIG_FILE).read_text()) == {"name": "my app settings"}


def test_what_a_crashed_save_left_in_its_staging_directory_is_given_back(tmp_path):
    directory = tmp_path / "model"
    save_model(small_model(), directory)
    # A save killed after its swap: the old version (with the user's folder) sits in the staging directory.
    dead_pid = 2**22 + 12345
    stale = tmp_path / f".model.saving-{dead_pid}-abcd"
    stale.mkdir()
    (stale / "user-folder").mkdir()
    (stale / "user-folder" / "a.txt").write_text("mine")
    (stale / WEIGHTS_FILE).write_bytes(b"old weights")
    save_model(small_model(), directory)
    assert (directory / "user-folder" / "a.txt").read_text() == "mine"
    assert not stale.exists()


def test_an_exception_inside_the_staging_block_leaves_the_directory_as_it_was(tmp_path):
    directory = tmp_path / "model"
    save_model(small_model(), directory)
    (directory / "NOTES.md").write_text("mine")
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    with pytest.raises(KeyboardInterrupt), owned_directory(directory, OWNED_FILES) as staging:
        (staging / CONFIG_FILE).write_text("half")
        raise KeyboardInterrupt
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_flipped_bytes_in_the_weights_are_caught_by_the_checksum(tmp_path):
    save_model(small_model(), tmp_path)
    weights = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    weights[-3] ^= 0x40  # inside a float: safetensors alone would load it silently
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(weights))
    with pytest.raises(ModelDirectoryError, match="does not match the checksum"):
        load_model(tmp_path)


def test_a_truncated_weights_file_gives_one_clear_error(tmp_path):
    save_model(small_model(), tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    del config["sha256"]  # as written before checksums: the format check must still catch it
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    data = (tmp_path / WEIGHTS_FILE).read_bytes()
    (tmp_path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelDirectoryError, match=r"model.safetensors is damaged .*copy the directory again"):
        load_model(tmp_path)


def test_non_finite_weights_are_refused_with_the_tensor_named(tmp_path):
    model = small_model()
    with torch.no_grad():
        model.layers[2].kernel[0, 0] = float("nan")
    save_model(model, tmp_path)
    with pytest.raises(ModelDirectoryError, match=r"holds 1 NaN or infinite values in '.*kernel'.*diverged"):
        load_model(tmp_path)


def test_a_training_runs_output_directory_points_at_its_model(tmp_path):
    save_model(small_model(), tmp_path / "model")
    with pytest.raises(ModelDirectoryError, match=r"training run's output directory.*its model is in .*model"):
        load_model(tmp_path)


def test_files_and_directories_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        save_model(small_model(), tmp_path / "model")
        write_atomically(tmp_path / "model.onnx", b"bytes")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "model" / WEIGHTS_FILE).stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "model.onnx").stat().st_mode) == 0o644


def test_a_reloaded_model_predicts_the_same(tmp_path):
    model = small_model()
    x = torch.randint(1, 20, (3, 5))
    save_model(model, tmp_path / "m")
    same = load_model(tmp_path / "m", compile=False)
    np.testing.assert_array_equal(same.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write_and_is_not_foreign(tmp_path):
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    leftover = tmp_path / f".log.csv.{dead_pid}-0123abcd.tmp"
    leftover.write_bytes(b"half a row")
    living = tmp_path / f".log.csv.{os.getpid()}-0123abcd.tmp"  # a writer still at work: left alone
    living.write_bytes(b"")
    assert is_leftover(leftover.name, {"log.csv"}) and is_leftover(f".last.saving-{dead_pid}-89abcdef", {"last"})
    assert not is_leftover("NOTES.md", {"log.csv"}) and not is_leftover(".log.csv.tmp", {"log.csv"})
    assert not is_leftover(leftover.name, {"config.json"})  # a leftover of a name seqlab does not own here
    write_atomically(tmp_path / "log.csv", b"epoch\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["log.csv", living.name])
    living.unlink()
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / f".config.json.{dead_pid}-0123abcd.tmp").write_bytes(b"{")
    small_model().save(model_dir)  # only a leftover inside: not someone else's directory
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(OWNED_FILES[:2])


def test_a_users_dotfiles_that_look_like_leftovers_survive_a_save(tmp_path):
    model_dir = tmp_path / "model"
    small_model().save(model_dir)
    for name in (".zshrc.previous", ".data.1-deadbeef.tmp", ".notes.saving-1-deadbeef"):
        (model_dir / name).write_text("mine\n")
    small_model().save(model_dir)
    assert all((model_dir / name).read_text() == "mine\n"
               for name in (".zshrc.previous", ".data.1-deadbeef.tmp", ".notes.saving-1-deadbeef"))
