"""seqlab → ONNX: every application model exported and run in onnxruntime, matching seqlab within 1e-4.

The applications' own models (`seqlab.apps.sentiment.build_model` for every
preset, `seqlab.apps.charlm.build_model` for every preset, exported as one
generation step or as the whole sequence, stateful ones included; the
Translator encoder–decoder) and small models covering every recurrent option
are exported once and run at two batch sizes and sequence lengths, padded
batches included. Skipped without onnx/onnxruntime, except in CI.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import torch

if os.environ.get("CI"):  # CI installs the test extra: missing ONNX tools must fail, not skip
    import onnx  # noqa: F401
    import onnxruntime
else:
    pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install -e '.[onnx]')")
    onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime")

import seqlab  # noqa: E402
from seqlab import layers  # noqa: E402
from seqlab.interop import OnnxExportError, export_onnx  # noqa: E402
from seqlab.interop.commands import add_parser  # noqa: E402

TOLERANCE = 1e-4
VOCABULARY = 30


def session(path) -> "onnxruntime.InferenceSession":
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def padded_ids(seed: int, batch: int, time: int, padding: str = "right") -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCABULARY, (batch, time), generator=generator)
    lengths = torch.randint(1, time + 1, (batch,), generator=generator)
    lengths[0] = time
    steps = torch.arange(time)[None, :]
    real = steps < lengths[:, None] if padding == "right" else steps >= (time - lengths)[:, None]
    return ids.masked_fill(~real, 0)


def seqlab_outputs(model, *inputs):
    model.eval()
    with torch.no_grad():
        result = model(*inputs)
    return [r.numpy() for r in result] if isinstance(result, (list, tuple)) else [result.numpy()]


def assert_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=TOLERANCE, rtol=0)


def sequential(*stack, input_shape=(None, None)):
    torch.manual_seed(0)
    model = seqlab.Sequential(list(stack))
    model.build(input_shape)
    return model


# ---------------------------------------------------------------------------- sentiment
def test_sentiment_classifier_honours_padding_at_any_batch_and_length(tmp_path):
    model = sequential(layers.Embedding(VOCABULARY, 8, mask_zero=True), layers.Bidirectional(layers.LSTM(6)),
                       layers.Dense(1, activation="sigmoid"))
    path = export_onnx(model, tmp_path / "sentiment.onnx")
    runner = session(path)
    assert [i.name for i in runner.get_inputs()] == ["inputs"]
    for seed, (batch, time) in enumerate([(2, 5), (7, 13)]):
        for padding in ("right", "left"):
            ids = padded_ids(seed, batch, time, padding)
            assert (ids == 0).any()
            assert_close(seqlab_outputs(model, ids), runner.run(None, {"inputs": ids.numpy()}))
    # The padding really is honoured: a padded row gives the same output as the unpadded sequence.
    short, padded = torch.tensor([[4, 7, 9]]), torch.tensor([[4, 7, 9, 0, 0, 0]])
    np.testing.assert_allclose(runner.run(None, {"inputs": padded.numpy()})[0],
                               runner.run(None, {"inputs": short.numpy()})[0], atol=1e-6)


# ---------------------------------------------------------------------------- the sentiment app's models
@pytest.mark.parametrize("preset", ["book-bilstm", "book-bisimplernn-100", "best", "transformer"])
def test_sentiment_app_model_of_each_preset(tmp_path, preset):
    from seqlab.apps import sentiment

    torch.manual_seed(0)
    model = sentiment.build_model(sentiment.make_recipe(preset), vocabulary_size=VOCABULARY)
    runner = session(export_onnx(model, tmp_path / "sentiment.onnx"))
    for seed, (batch, time) in enumerate([(2, 5), (7, 13)]):
        ids = padded_ids(seed, batch, time)
        assert (ids == 0).any()
        (expected,) = seqlab_outputs(model, ids)
        assert expected.shape == (batch, 1) and ((expected > 0) & (expected < 1)).all()
        assert_close([expected], runner.run(None, {"inputs": ids.numpy()}))


def test_export_onnx_creates_the_directory_and_keeps_the_training_mode(tmp_path):
    from seqlab.apps import sentiment

    torch.manual_seed(0)
    model = sentiment.build_model(sentiment.make_recipe("book-bilstm"), vocabulary_size=VOCABULARY)
    model.train()
    path = export_onnx(model, tmp_path / "out" / "model.onnx")
    assert path == tmp_path / "out" / "model.onnx" and path.stat().st_size > 0
    assert model.training  # export ran the model in inference mode and gave it back as it was
    ids = padded_ids(5, 4, 9)
    assert_close(seqlab_outputs(model, ids), session(path).run(None, {"inputs": ids.numpy()}))


# ---------------------------------------------------------------------------- char-LM
def assert_step_graph_generates(model, runner):
    """Feeding the step graph one id at a time (states fed back, from zeros) gives the model's logits."""
    state_names = [i.name for i in runner.get_inputs()][1:]
    assert [o.name for o in runner.get_outputs()] == ["logits", *[f"next_{n}" for n in state_names]]
    recurrent = [layer for layer in model.layers if isinstance(layer, layers.RNN)]
    for seed, (batch, time) in enumerate([(1, 4), (5, 9)]):
        ids = padded_ids(seed, batch, time).clamp(min=1)
        model.reset_states()  # a stateful model starts from zeros too
        (expected,) = seqlab_outputs(model, ids)
        states = {name: np.zeros((len(recurrent), batch, recurrent[0].units), np.float32) for name in state_names}
        for step in range(time):  # generation: feed each step's states back in
            logits, *new = runner.run(None, {"ids": ids[:, step].numpy(), **states})
            np.testing.assert_allclose(logits, expected[:, step], atol=TOLERANCE, rtol=0)
            states = dict(zip(state_names, new))


def assert_sequence_graph_reproduces(model, runner):
    for batch, time in [(2, 3), (4, 11)]:
        ids = padded_ids(batch, batch, time).clamp(min=1)
        model.reset_states()
        assert_close(seqlab_outputs(model, ids), runner.run(None, {"inputs": ids.numpy()}))


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_char_lm_step_with_state_in_and_out_reproduces_the_sequence(tmp_path, cell):
    recurrent = getattr(layers, cell)
    model = sequential(layers.Embedding(VOCABULARY, 8), recurrent(16, return_sequences=True), layers.Dropout(0.2),
                       recurrent(16, return_sequences=True), layers.Dense(VOCABULARY))
    runner = session(export_onnx(model, tmp_path / "charlm.onnx"))
    assert [i.name for i in runner.get_inputs()] == (["ids", "h", "c"] if cell == "LSTM" else ["ids", "h"])
    assert_step_graph_generates(model, runner)


def test_char_lm_as_a_whole_sequence(tmp_path):
    model = sequential(layers.Embedding(VOCABULARY, 8), layers.LSTM(12, return_sequences=True),
                       layers.Dense(VOCABULARY))
    assert_sequence_graph_reproduces(model, session(export_onnx(model, tmp_path / "sequence.onnx", mode="sequence")))


@pytest.mark.parametrize("preset", ["book", "best", "quick", "transformer"])
def test_charlm_app_model_of_each_preset(tmp_path, preset):
    from seqlab.apps import charlm

    torch.manual_seed(0)
    model = charlm.build_model(VOCABULARY, charlm.Settings(**charlm.PRESETS[preset]))
    runner = session(export_onnx(model, tmp_path / "charlm.onnx"))
    if preset == "transformer":  # no recurrent state to step: the whole (causal) sequence
        assert [i.name for i in runner.get_inputs()] == ["inputs"]
        assert_sequence_graph_reproduces(model, runner)
    else:
        assert [i.name for i in runner.get_inputs()] == ["ids", "h", "c"]
        assert_step_graph_generates(model, runner)


def carried(model) -> list:
    return [layer.carried_states for layer in model.layers if isinstance(layer, layers.RNN)]


@pytest.mark.parametrize("mode", ["step", "sequence"])
def test_stateful_char_lm_exports_from_zero_state_and_keeps_its_own(tmp_path, mode):
    from seqlab.apps import charlm

    torch.manual_seed(0)
    settings = charlm.Settings(**{**charlm.PRESETS["quick"], "layers": 2})
    model = charlm.build_model(VOCABULARY, settings)
    assert all(layer.stateful for layer in model.layers if isinstance(layer, layers.RNN))
    seqlab_outputs(model, padded_ids(0, settings.batch_size, 6).clamp(min=1))  # as after training: a carried state
    before = [[state.clone() for state in states] for states in carried(model)]
    assert all(states is not None and states[0].shape == (settings.batch_size, 256) for states in before)
    runner = session(export_onnx(model, tmp_path / "charlm.onnx", mode=mode))
    for states, saved in zip(carried(model), before):  # export neither advanced nor forgot the state
        assert len(states) == len(saved) and all(torch.equal(a, b) for a, b in zip(states, saved))
    if mode == "step":
        assert_step_graph_generates(model, runner)
    else:
        assert_sequence_graph_reproduces(model, runner)


def test_export_command_on_a_saved_stateful_char_lm(tmp_path):
    from seqlab.apps import charlm

    torch.manual_seed(0)
    model = charlm.build_model(VOCABULARY, charlm.Settings(**charlm.PRESETS["quick"]))
    model.save(tmp_path / "model")
    parser = argparse.ArgumentParser(prog="seqlab")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["export", "onnx", str(tmp_path / "model"), str(tmp_path / "x.onnx"),
                              "--mode", "sequence"])
    assert args.handler(args) == 0
    assert_sequence_graph_reproduces(model, session(tmp_path / "x.onnx"))


# ---------------------------------------------------------------------------- translator
@pytest.mark.parametrize("cell, attention, bidirectional", [("gru", "dot", True), ("lstm", "additive", True),
                                                           ("gru", None, False)])
def test_translator_with_padded_sources(tmp_path, cell, attention, bidirectional):
    from seqlab.apps import translate
    from seqlab.data import Vocabulary

    torch.manual_seed(0)
    source = Vocabulary([f"s{i}" for i in range(VOCABULARY)])
    target = Vocabulary([f"t{i}" for i in range(20)], specials=(translate.SOS, translate.EOS))
    model = translate.Translator(source, target, embedding_dim=8, units=6, cell=cell, attention=attention,
                                 bidirectional=bidirectional)
    runner = session(export_onnx(model, tmp_path / "translator.onnx"))
    assert [i.name for i in runner.get_inputs()] == ["source", "target_in"]
    for seed, (batch, source_time, target_time) in enumerate([(2, 5, 3), (6, 11, 8)]):
        source_ids = padded_ids(seed, batch, source_time)
        target_ids = padded_ids(seed + 10, batch, target_time).clamp(max=len(target) - 1)
        expected = seqlab_outputs(model, (source_ids, target_ids))
        assert_close(expected, runner.run(None, {"source": source_ids.numpy(), "target_in": target_ids.numpy()}))


# ---------------------------------------------------------------------------- every recurrent option
RECURRENT_CASES = {
    "simple-relu-backwards": lambda: layers.SimpleRNN(5, activation="relu", go_backwards=True, return_sequences=True),
    "gru-reset-before": lambda: layers.GRU(5, reset_after=False, return_sequences=True),
    "gru-no-bias-held-output": lambda: layers.GRU(5, use_bias=False, return_sequences=True),
    "lstm-peephole-hard-sigmoid": lambda: layers.LSTM(5, peephole=True, recurrent_activation="hard_sigmoid",
                                                      activation="softsign", return_sequences=True),
    "bidirectional-sum-gru": lambda: layers.Bidirectional(layers.GRU(5, return_sequences=True), merge_mode="sum"),
}


@pytest.mark.parametrize("case", sorted(RECURRENT_CASES))
def test_recurrent_options_and_left_padding(tmp_path, case):
    model = sequential(layers.Embedding(VOCABULARY, 4, mask_zero=True), RECURRENT_CASES[case](),
                       layers.LSTM(3, return_sequences=True), layers.Dense(2))
    runner = session(export_onnx(model, tmp_path / "model.onnx"))
    for batch, time in [(3, 4), (5, 10)]:
        for padding in ("right", "left"):
            ids = padded_ids(batch + time, batch, time, padding)
            assert_close(seqlab_outputs(model, ids), runner.run(None, {"inputs": ids.numpy()}))


def test_attention_layers_and_float_inputs(tmp_path):
    model = sequential(layers.MultiHeadAttention(num_heads=2, key_dim=4), layers.LayerNormalization(),
                       layers.GRU(4, return_sequences=True), layers.GlobalAveragePooling1D(), layers.Dense(2),
                       input_shape=(None, None, 6))
    runner = session(export_onnx(model, tmp_path / "model.onnx"))
    for batch, time in [(1, 3), (4, 8)]:
        x = torch.randn(batch, time, 6)
        assert_close(seqlab_outputs(model, x), runner.run(None, {"inputs": x.numpy()}))


# ---------------------------------------------------------------------------- command line, errors
def test_export_onnx_command(tmp_path):
    model = sequential(layers.Embedding(VOCABULARY, 8, mask_zero=True), layers.Bidirectional(layers.GRU(4)),
                       layers.Dense(1, activation="sigmoid"))
    model.save(tmp_path / "model")
    parser = argparse.ArgumentParser(prog="seqlab")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["export", "onnx", str(tmp_path / "model"), str(tmp_path / "model.onnx")])
    assert args.handler(args) == 0
    ids = padded_ids(3, 4, 7)
    assert_close(seqlab_outputs(model, ids), session(tmp_path / "model.onnx").run(None, {"inputs": ids.numpy()}))
    args = parser.parse_args(["export", "onnx", str(tmp_path / "model"), str(tmp_path / "x.onnx"), "--mode", "step"])
    assert args.handler(args) == 1 and not (tmp_path / "x.onnx").exists()


def test_step_mode_needs_a_language_model(tmp_path):
    model = sequential(layers.Embedding(VOCABULARY, 8, mask_zero=True), layers.Bidirectional(layers.LSTM(6)),
                       layers.Dense(1))
    with pytest.raises(OnnxExportError, match="mode='step' exports a language model"):
        export_onnx(model, tmp_path / "step.onnx", mode="step")
    assert not (tmp_path / "step.onnx").exists()
