"""Saving and loading: identical predictions, atomic writes under crashes, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab import saving
from seqlab.saving import ModelDirectoryError, load_model, register_serializable, save_model
from seqlab.seeding import get_rng_state, set_rng_state, set_seed
from seqlab.training import BinaryCrossentropy, SparseCategoricalCrossentropy
from test_training_toys import SignOfSum, Tagger, copy_first_token_data, sign_of_sum_data

REPO = Path(__file__).resolve().parents[1]


def _trained_sign_model(seed: int = 0) -> SignOfSum:
    set_seed(seed)
    model = SignOfSum(units=8, dropout=0.2)
    model.compile("adam", BinaryCrossentropy(from_logits=True), metrics=["accuracy"], device="cpu")
    model.fit(*sign_of_sum_data(64), batch_size=16, epochs=1, verbose=0)
    return model


@register_serializable
class CharTokenizer:
    """A stand-in for seqlab.data's tokenizers: anything with get_config/from_config."""

    def __init__(self, characters: str):
        self.characters = characters

    def get_config(self) -> dict:
        return {"characters": self.characters}

    @classmethod
    def from_config(cls, config: dict) -> "CharTokenizer":
        return cls(**config)


def test_save_then_load_gives_identical_predictions_and_compile_settings(tmp_path):
    model = _trained_sign_model()
    x, _ = sign_of_sum_data(40, seed=3)
    model.save(tmp_path / "model", tokenizer=CharTokenizer("+-"))
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is SignOfSum and loaded.get_config() == {"units": 8, "dropout": 0.2}
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.metrics_names == ["loss", "accuracy"] and loaded.compiled_loss.from_logits
    assert type(loaded.optimizer).__name__ == "Adam" and loaded.tokenizer.characters == "+-"
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (config["format"], config["model"]["class_name"], config["torch_version"]) == (
        "seqlab.model", "SignOfSum", torch.__version__)


def test_sequence_model_round_trip(tmp_path):
    set_seed(1)
    model = Tagger()
    model.compile("rmsprop", SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                  metrics=["accuracy", "perplexity"], device="cpu")
    x, y = copy_first_token_data(32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "tagger")
    loaded = load_model(tmp_path / "tagger")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-7)


def _fail_when_writing(name: str, error: type[BaseException]):
    real_write = saving.write_new_file

    def write(path, data):
        if path.name == name:
            path.write_bytes(data[: len(data) // 2])  # a torn, half-written file
            raise error("simulated crash while writing " + name)
        real_write(path, data)

    return write


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_an_interrupted_save_leaves_the_previous_version_loadable(tmp_path, monkeypatch, error):
    first, second = _trained_sign_model(0), _trained_sign_model(1)
    x, _ = sign_of_sum_data(16, seed=4)
    first.save(tmp_path / "model")
    monkeypatch.setattr(saving, "write_new_file", _fail_when_writing("model.safetensors", error))
    with pytest.raises(error, match="simulated crash"):
        second.save(tmp_path / "model")
    np.testing.assert_array_equal(load_model(tmp_path / "model").predict(x), first.predict(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging left behind


def test_a_killed_save_leaves_the_previous_version_and_its_leftovers_are_cleaned(tmp_path):
    first = _trained_sign_model(0)
    x, _ = sign_of_sum_data(16, seed=4)
    first.save(tmp_path / "model")
    script = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
        from seqlab import saving
        from test_training_toys import SignOfSum
        real_write = saving.write_new_file
        def write(path, data):
            if path.name == "model.safetensors":
                path.write_bytes(data[:10])
                os._exit(9)  # killed mid-save: no cleanup runs
            real_write(path, data)
        saving.write_new_file = write
        saving.save_model(SignOfSum(units=8, dropout=0.2), {str(tmp_path / 'model')!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 9
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.saving-")
    np.testing.assert_array_equal(load_model(tmp_path / "model").predict(x), first.predict(x))
    first.save(tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_checkpoints_hold_the_training_state_without_pickles(tmp_path):
    state = {"epoch": 3, "rng": get_rng_state(), "nested": {0: (1.5, torch.arange(3)), "inf": float("inf")}}
    saving.save_checkpoint(SignOfSum(), tmp_path / "ckpt", state)
    assert saving.is_checkpoint(tmp_path / "ckpt")
    assert {p.suffix for p in (tmp_path / "ckpt").iterdir()} == {".json", ".safetensors"}
    loaded = saving.load_training_state(tmp_path / "ckpt")
    assert loaded["epoch"] == 3 and loaded["nested"][0][0] == 1.5 and loaded["nested"]["inf"] == float("inf")
    assert torch.equal(loaded["nested"][0][1], torch.arange(3))
    set_rng_state(state["rng"])
    expected = (torch.rand(2), np.random.rand())
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(2), expected[0]) and np.random.rand() == expected[1]


def test_summary_of_a_saved_model(tmp_path):
    SignOfSum(units=4).save(tmp_path / "m")
    text = load_model(tmp_path / "m", compile=False).summary(print_fn=None)
    assert "rnn (GRU)" in text and "Total params: 89" in text


# --------------------------------------------------------------- clear errors
def test_a_missing_weights_file_is_named(tmp_path):
    SignOfSum().save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelDirectoryError, match=r"m is missing model.safetensors \(it has \['config.json'\]\)"):
        load_model(tmp_path / "m")


def test_a_missing_directory_and_a_non_checkpoint_are_reported(tmp_path):
    with pytest.raises(ModelDirectoryError, match="No model directory at .*nowhere"):
        load_model(tmp_path / "nowhere")
    SignOfSum().save(tmp_path / "m")
    with pytest.raises(ModelDirectoryError, match="is a saved model, not a checkpoint"):
        saving.load_training_state(tmp_path / "m")


def test_unknown_formats_and_classes_are_rejected(tmp_path):
    SignOfSum().save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "format": "keras.h5"}))
    with pytest.raises(ModelDirectoryError, match="format is 'keras.h5', expected 'seqlab.model'"):
        load_model(tmp_path / "m")
    config_path.write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ModelDirectoryError, match="newer than this seqlab reads"):
        load_model(tmp_path / "m")
    config_path.write_text(json.dumps({**config, "model": {"class_name": "Mystery", "config": {}}}))
    with pytest.raises(ModelDirectoryError, match="'Mystery', which is not a registered class"):
        load_model(tmp_path / "m")


def test_weights_that_do_not_fit_the_config_are_reported(tmp_path):
    SignOfSum(units=8).save(tmp_path / "m")
    with pytest.raises(ModelDirectoryError, match=r"do not fit this SignOfSum.*rnn.weight_hh_l0: saved \(24, 8\)"):
        saving.load_weights(SignOfSum(units=4), tmp_path / "m")


def test_saving_refuses_to_replace_a_directory_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(ModelDirectoryError, match="Refusing to write a model into"):
        save_model(SignOfSum(), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_unregistered_models_cannot_be_saved(tmp_path):
    class Local(SignOfSum):
        pass

    with pytest.raises(TypeError, match="Local cannot be saved: it is not registered"):
        Local().save(tmp_path / "m")
