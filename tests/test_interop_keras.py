"""Keras → seqlab: models built and saved by real TensorFlow-Keras, loaded with `from_keras`.

Each tutorial-style model (Bi-LSTM classifier, char-LSTM language model,
stacked GRU with reset_after=False, attention classifiers) is built in Keras
with random weights, saved as .keras, as legacy .h5 and as .weights.h5 (filled
into a seqlab twin), and must give Keras' predictions within 1e-5 on a padded
batch. Keras 2 files (functional and Sequential .h5, weights-only .h5) are
written by hand in tf.keras 2's layout from the Keras model's weights, and
come from tf_keras when it is installed. Skipped without TensorFlow, except
in CI, where a missing oracle fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from keras_oracle import keras  # noqa: E402  (real TensorFlow-Keras, or a skip)

import seqlab  # noqa: E402
from seqlab import layers  # noqa: E402
from seqlab.interop import KerasGraph, KerasImportError, UnsupportedKerasError, from_keras  # noqa: E402
from seqlab.interop.commands import add_parser  # noqa: E402
from seqlab.training import Model  # noqa: E402

pytestmark = [pytest.mark.keras,  # Keras' own set_weights trips numpy 2's __array__ deprecation
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
TOLERANCE = 1e-5
VOCABULARY = 40


def padded_ids(seed: int, batch: int = 4, time: int = 9) -> np.ndarray:
    """Token ids with right padding, left padding and a full row (0 = padding)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCABULARY, size=(batch, time)).astype("int32")
    ids[1, -3:] = 0
    ids[2, :4] = 0
    return ids


def randomize(model, seed: int):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.4, w.shape).astype("float32") for w in model.get_weights()])
    return model


def save_all(model, directory, name: str) -> dict[str, str]:
    paths = {kind: str(directory / f"{name}{kind}") for kind in (".keras", ".h5", ".weights.h5")}
    model.save(paths[".keras"])
    model.save(paths[".h5"])
    model.save_weights(paths[".weights.h5"])
    return paths


def keras_outputs(model, ids: np.ndarray):
    result = model(ids)
    return [r.numpy() for r in result] if isinstance(result, (list, tuple)) else result.numpy()


def predict(model, ids: np.ndarray):
    with torch.no_grad():
        result = model(torch.from_numpy(ids).long())
    return [r.numpy() for r in result] if isinstance(result, list) else result.numpy()


def assert_close(ours, theirs):
    if isinstance(theirs, (list, tuple)):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_close(a, b)
        return
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)


# ---------------------------------------------------------------------------- the tutorial models
def bilstm_classifier(module):
    return [module.Embedding(VOCABULARY, 8, mask_zero=True), module.Bidirectional(module.LSTM(6)),
            module.Dense(1, activation="sigmoid")]


def char_lstm(module):
    return [module.Embedding(VOCABULARY, 8), module.LSTM(12, return_sequences=True), module.Dense(VOCABULARY)]


def stacked_gru(module):
    return [module.Embedding(VOCABULARY, 8, mask_zero=True),
            module.GRU(7, return_sequences=True, reset_after=False),
            module.GRU(5, reset_after=False), module.Dense(3, activation="softmax")]


SEQUENTIAL_MODELS = {"bilstm_classifier": bilstm_classifier, "char_lstm": char_lstm, "stacked_gru": stacked_gru}


@pytest.mark.parametrize("kind", sorted(SEQUENTIAL_MODELS))
def test_sequential_tutorial_models_match_keras_in_all_three_formats(kind, tmp_path):
    stack = SEQUENTIAL_MODELS[kind]
    keras_model = randomize(keras.Sequential([keras.Input(shape=(None,), dtype="int32"), *stack(keras.layers)]), 1)
    ids = padded_ids(2)
    expected = keras_outputs(keras_model, ids)
    paths = save_all(keras_model, tmp_path, kind)

    for kind_of_file in (".keras", ".h5"):
        model = from_keras(paths[kind_of_file])
        assert isinstance(model, seqlab.Sequential) and not model.training
        assert model.count_params() == keras_model.count_params()
        assert_close(predict(model, ids), expected)

    twin = seqlab.Sequential(stack(layers))  # written by hand, as a user would
    twin.build((None, None))
    assert from_keras(paths[".weights.h5"], model=twin) is twin
    assert_close(predict(twin.eval(), ids), expected)


def attention_graph(module):
    """Functional: ids → Embedding → LSTM states; Attention(states, embeddings) → pool → Dense."""
    ids = module.Input(shape=(None,), dtype="int32", name="ids")
    embedded = module.layers.Embedding(VOCABULARY, 8, mask_zero=True)(ids)
    states = module.layers.LSTM(8, return_sequences=True)(embedded)
    context = module.layers.Attention(use_scale=True)([states, embedded])
    pooled = module.layers.GlobalAveragePooling1D()(context)
    return module.Model(ids, module.layers.Dense(3)(pooled))


class AttentionClassifier(Model):
    """The same model written as a seqlab Model subclass (for the weights-only file)."""

    def __init__(self):
        super().__init__()
        self.embedding = layers.Embedding(VOCABULARY, 8, mask_zero=True)
        self.lstm = layers.LSTM(8, return_sequences=True)
        self.attention = layers.Attention(use_scale=True)
        self.pooling = layers.GlobalAveragePooling1D()
        self.dense = layers.Dense(3)
        self(torch.ones(1, 2, dtype=torch.long))  # builds every layer

    def forward(self, ids):
        embedded = self.embedding(ids)
        return self.dense(self.pooling(self.attention([self.lstm(embedded), embedded])))


def test_attention_graph_matches_keras_in_all_three_formats(tmp_path):
    keras_model = randomize(attention_graph(keras), 3)
    ids = padded_ids(4)
    expected = keras_outputs(keras_model, ids)
    paths = save_all(keras_model, tmp_path, "attention")
    for kind_of_file in (".keras", ".h5"):
        model = from_keras(paths[kind_of_file])
        assert isinstance(model, KerasGraph)
        assert_close(predict(model, ids), expected)
    twin = AttentionClassifier()
    from_keras(paths[".weights.h5"], model=twin)
    assert_close(predict(twin.eval(), ids), expected)


@pytest.mark.filterwarnings("ignore:Layer 'global_max_pooling1d'")  # Keras: its max-pool ignores masks
def test_every_importable_layer_matches_keras(tmp_path):
    """GRU both ways, SimpleRNN, every merge mode, AdditiveAttention, MultiHeadAttention, LayerNorm, pools."""
    k = keras.layers
    ids = keras.Input(shape=(None,), dtype="int32")
    x = k.Embedding(VOCABULARY, 8, mask_zero=True)(ids)
    x = k.Dropout(0.3)(x)
    outputs = []
    for merge_mode, rnn in (("concat", k.GRU(4, return_sequences=True)),
                            ("sum", k.GRU(4, return_sequences=True, reset_after=False)),
                            ("mul", k.SimpleRNN(4, return_sequences=True, activation="relu")),
                            ("ave", k.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid"))):
        outputs.append(k.Bidirectional(rnn, merge_mode=merge_mode)(x))
    forward, backward = k.Bidirectional(k.LSTM(4), merge_mode=None)(x)
    reversed_gru = k.GRU(3, go_backwards=True, reset_after=False)(x)
    cell_rnn = k.RNN(k.LSTMCell(3))(x)
    query = k.TimeDistributed(k.Dense(8, activation="tanh"))(outputs[0])
    additive = k.AdditiveAttention()([query, x])
    heads = k.MultiHeadAttention(num_heads=2, key_dim=3)(additive, outputs[1])
    normed = k.LayerNormalization(epsilon=1e-5)(heads)
    pooled = k.GlobalAveragePooling1D()(normed)
    maximum = k.GlobalMaxPooling1D()(outputs[2])   # Keras' ignores the mask: padded steps (zeros) count
    heads_maximum = k.GlobalMaxPooling1D()(heads)  # reads padded query rows: equal weights on every key in Keras
    final = k.Activation("softsign")(k.Dense(2)(pooled))
    outputs = [final, maximum, heads_maximum, outputs[3], forward, backward, reversed_gru, cell_rnn]
    keras_model = randomize(keras.Model(ids, outputs), 5)
    batch = padded_ids(6)
    expected = keras_outputs(keras_model, batch)
    path = str(tmp_path / "zoo.keras")
    keras_model.save(path)
    model = from_keras(path)
    assert isinstance(model, KerasGraph)
    assert model.count_params() == keras_model.count_params()
    assert_close(predict(model, batch), expected)


def keras2_file(path, keras_model) -> None:
    """Write `keras_model` (attention_graph) in tf.keras 2's HDF5 layout, as tf_keras 2.21 writes it.

    The config below is the one tf_keras writes for attention_graph (Keras 2
    names: batch_input_shape, dtype strings, nested inbound_nodes; weights
    under model_weights/<layer>/<layer>/<weight>:0), so Keras 2 files are
    tested without tf_keras installed.
    """
    import h5py

    def layer(class_name, name, inbound, **config):
        return {"class_name": class_name, "name": name, "inbound_nodes": [[[n, 0, 0, {}] for n in inbound]] if
                inbound else [], "config": {"name": name, "trainable": True, "dtype": "float32", **config}}

    config = {"class_name": "Functional", "config": {"name": "model", "trainable": True, "layers": [
        {"class_name": "InputLayer", "name": "ids", "inbound_nodes": [], "config": {
            "batch_input_shape": [None, None], "dtype": "int32", "sparse": False, "ragged": False, "name": "ids"}},
        layer("Embedding", "embedding", ["ids"], batch_input_shape=[None, None], input_dim=VOCABULARY,
              output_dim=8, mask_zero=True, input_length=None,
              embeddings_initializer={"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05,
                                                                                 "seed": None}}),
        layer("LSTM", "lstm", ["embedding"], return_sequences=True, return_state=False, go_backwards=False,
              stateful=False, unroll=False, time_major=False, units=8, activation="tanh",
              recurrent_activation="sigmoid", use_bias=True, unit_forget_bias=True, dropout=0.0,
              recurrent_dropout=0.0, implementation=2, kernel_regularizer=None),
        layer("Attention", "attention", ["lstm", "embedding"], dropout=0.0, use_scale=True, score_mode="dot"),
        layer("GlobalAveragePooling1D", "global_average_pooling1d", ["attention"], data_format="channels_last",
              keepdims=False),
        layer("Dense", "dense", ["global_average_pooling1d"], units=3, activation="linear", use_bias=True)],
        "input_layers": [["ids", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    weight_names = {"embedding": ["embeddings"], "lstm": ["lstm_cell/kernel", "lstm_cell/recurrent_kernel",
                                                           "lstm_cell/bias"],
                    "attention": ["scale"], "dense": ["kernel", "bias"]}
    arrays = dict(zip(["embedding", "lstm", "attention", "dense"],
                      [[w.numpy() for w in keras_model.layers[i].weights] for i in (1, 2, 3, 5)]))
    with h5py.File(path, "w") as file:
        file.attrs["model_config"] = json.dumps(config)
        file.attrs["keras_version"] = "2.21.0"
        group = file.create_group("model_weights")
        names = ["ids", "embedding", "lstm", "attention", "global_average_pooling1d", "dense"]
        group.attrs["layer_names"] = np.array([n.encode() for n in names])  # tf.keras writes bytes
        for name in names:
            layer_group = group.create_group(name)
            full = [f"{name}/{weight}:0" for weight in weight_names.get(name, [])]
            layer_group.attrs["weight_names"] = np.array([n.encode() for n in full]) if full else np.array([])
            for weight_name, array in zip(full, arrays.get(name, [])):
                layer_group.create_dataset(weight_name, data=array)


def test_keras2_functional_h5_layout(tmp_path):
    keras_model = randomize(attention_graph(keras), 23)
    keras2_file(tmp_path / "keras2.h5", keras_model)
    model = from_keras(tmp_path / "keras2.h5")
    assert isinstance(model, KerasGraph)
    ids = padded_ids(24)
    assert_close(predict(model, ids), keras_outputs(keras_model, ids))


def keras2_bilstm_layers(names: list[str]) -> list[dict]:
    """The Keras 2 configs of bilstm_classifier's layers (`names`: embedding, bidirectional, dense), as
    tf.keras 2 writes them: every argument, initializers as {class_name, config}, dtype strings."""
    def initializer(class_name, **config):
        return {"class_name": class_name, "config": config}

    regularizers = {key: None for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                          "kernel_constraint", "bias_constraint")}
    lstm = {"name": "lstm", "trainable": True, "dtype": "float32", "return_sequences": False,
            "return_state": False, "go_backwards": False, "stateful": False, "unroll": False, "time_major": False,
            "units": 6, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
            "kernel_initializer": initializer("GlorotUniform", seed=None),
            "recurrent_initializer": initializer("Orthogonal", gain=1.0, seed=None),
            "bias_initializer": initializer("Zeros"), "unit_forget_bias": True, **regularizers,
            "recurrent_regularizer": None, "recurrent_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0,
            "implementation": 2}
    embedding, bidirectional, dense = names
    return [
        {"class_name": "Embedding", "config": {
            "name": embedding, "trainable": True, "batch_input_shape": [None, None], "dtype": "float32",
            "input_dim": VOCABULARY, "output_dim": 8,
            "embeddings_initializer": initializer("RandomUniform", minval=-0.05, maxval=0.05, seed=None),
            "embeddings_regularizer": None, "activity_regularizer": None, "embeddings_constraint": None,
            "mask_zero": True, "input_length": None}},
        {"class_name": "Bidirectional", "config": {
            "name": bidirectional, "trainable": True, "dtype": "float32",
            "layer": {"class_name": "LSTM", "config": lstm}, "merge_mode": "concat"}},
        {"class_name": "Dense", "config": {
            "name": dense, "trainable": True, "dtype": "float32", "units": 1, "activation": "sigmoid",
            "use_bias": True, "kernel_initializer": initializer("GlorotUniform", seed=None),
            "bias_initializer": initializer("Zeros"), **regularizers}}]


def keras2_bilstm_weights(keras_model, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """bilstm_classifier's weights under Keras 2's names: {layer: {"<layer>/.../<weight>:0": array}}."""
    embedding, bidirectional, dense = names
    lstm = [f"{bidirectional}/{direction}_lstm/lstm_cell/{weight}:0" for direction in ("forward", "backward")
            for weight in ("kernel", "recurrent_kernel", "bias")]
    weight_names = [[f"{embedding}/embeddings:0"], lstm, [f"{dense}/kernel:0", f"{dense}/bias:0"]]
    return {name: dict(zip(full, [w.numpy() for w in layer.weights]))
            for name, full, layer in zip(names, weight_names, keras_model.layers)}


def write_keras2_weights(group, weights: dict[str, dict[str, np.ndarray]], layer_names: list[str]) -> None:
    """Keras 2's `save_weights_to_hdf5_group`: `layer_names`, and per layer its `weight_names` and arrays."""
    group.attrs["layer_names"] = np.array([n.encode() for n in layer_names])  # tf.keras writes bytes
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.15.0"
    for name in layer_names:
        layer_group = group.create_group(name)
        arrays = weights.get(name, {})
        layer_group.attrs["weight_names"] = np.array([n.encode() for n in arrays]) if arrays else np.array([])
        for weight_name, array in arrays.items():
            layer_group.create_dataset(weight_name, data=array)


KERAS2_SEQUENTIAL_LAYOUTS = ("input_layer", "first_layer_shape", "build_input_shape")


def keras2_sequential_file(path, keras_model, layout: str) -> None:
    """Write `keras_model` (bilstm_classifier) as Keras 2 `model.save("m.h5")` writes a Sequential.

    `layout`: "input_layer" (built on `keras.Input`: an InputLayer config first,
    tf.keras 2.13+'s module/registered_name keys), "first_layer_shape" (no
    InputLayer, the first layer's `batch_input_shape` gives the input, as
    Keras 2 before tf.keras 2.4 wrote), "build_input_shape" (no InputLayer, no
    layer shape: built with `model.build((None, None))`). The InputLayer has
    no weights, so it is not among `model_weights`' layer names.
    """
    import h5py

    names = ["embedding", "bidirectional", "dense"]
    specs = keras2_bilstm_layers(names)
    config = {"name": "sequential", "layers": specs}
    if layout == "input_layer":
        specs.insert(0, {"class_name": "InputLayer", "config": {
            "batch_input_shape": [None, None], "dtype": "int32", "sparse": False, "ragged": False,
            "name": "input_1"}})
        for spec in specs:
            spec.update(module="keras.layers", registered_name=None)
    elif layout == "build_input_shape":
        del specs[0]["config"]["batch_input_shape"]
        config["build_input_shape"] = [None, None]
    with h5py.File(path, "w") as file:
        file.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": config})
        file.attrs["keras_version"] = "2.15.0"
        file.attrs["backend"] = "tensorflow"
        write_keras2_weights(file.create_group("model_weights"), keras2_bilstm_weights(keras_model, names), names)


def bilstm_keras_model(seed: int):
    return randomize(keras.Sequential([keras.Input(shape=(None,), dtype="int32"), *bilstm_classifier(keras.layers)]),
                     seed)


@pytest.mark.parametrize("layout", KERAS2_SEQUENTIAL_LAYOUTS)
def test_keras2_sequential_h5_layout(tmp_path, layout):
    keras_model = bilstm_keras_model(25)
    keras2_sequential_file(tmp_path / "keras2.h5", keras_model, layout)
    model = from_keras(tmp_path / "keras2.h5")
    assert isinstance(model, seqlab.Sequential) and not model.training
    assert [type(layer).__name__ for layer in model.layers if not isinstance(layer, layers.InputLayer)] == \
        ["Embedding", "Bidirectional", "Dense"]
    assert model.count_params() == keras_model.count_params() == 8 * VOCABULARY + 2 * 4 * 6 * (8 + 6 + 1) + 13
    ids = padded_ids(26)
    expected = keras_outputs(keras_model, ids)
    assert expected.shape == (4, 1)
    assert_close(predict(model, ids), expected)


@pytest.mark.parametrize("filename", ["bilstm.weights.h5", "bilstm_weights.h5"])
def test_keras2_weights_only_h5_layout(tmp_path, filename):
    """Keras 2 `save_weights(...)`: `layer_names` at the file's root, matched to the model's layers by order."""
    import h5py

    keras_model = bilstm_keras_model(27)
    names = ["embedding_1", "bidirectional_1", "dense_1"]  # other names than seqlab's: the order decides
    with h5py.File(tmp_path / filename, "w") as file:
        write_keras2_weights(file, keras2_bilstm_weights(keras_model, names), names)
    twin = seqlab.Sequential(bilstm_classifier(layers))
    twin.build((None, None))
    assert from_keras(tmp_path / filename, model=twin) is twin
    ids = padded_ids(28)
    assert_close(predict(twin.eval(), ids), keras_outputs(keras_model, ids))
    with pytest.raises(KerasImportError, match="holds only weights"):
        from_keras(tmp_path / filename)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_keras2_h5_files_from_tf_keras(tmp_path):
    """Real Keras 2 HDF5 files (tf_keras): a whole Sequential model, a functional graph, bare weights.

    tf-keras is optional (it installs the full tensorflow wheel): without it,
    the hand-written Keras 2 files above (test_keras2_functional_h5_layout,
    test_keras2_sequential_h5_layout, test_keras2_weights_only_h5_layout)
    cover the Keras 2 layouts.
    """
    tf_keras = pytest.importorskip("tf_keras", reason="real Keras 2 files need tf-keras (pip install tf-keras)")
    ids = padded_ids(7)
    sequential = randomize(tf_keras.Sequential(
        [tf_keras.Input(shape=(None,), dtype="int32"), *bilstm_classifier(tf_keras.layers)]), 8)
    sequential.save(tmp_path / "bilstm.h5")
    sequential.save_weights(tmp_path / "bilstm_weights.h5")
    expected = keras_outputs(sequential, ids)
    assert_close(predict(from_keras(tmp_path / "bilstm.h5"), ids), expected)
    twin = seqlab.Sequential(bilstm_classifier(layers))
    twin.build((None, None))
    assert_close(predict(from_keras(tmp_path / "bilstm_weights.h5", model=twin).eval(), ids), expected)

    graph = randomize(attention_graph(tf_keras), 9)
    graph.save(tmp_path / "attention.h5")
    assert_close(predict(from_keras(tmp_path / "attention.h5"), ids), keras_outputs(graph, ids))


# ---------------------------------------------------------------------------- model kinds and round trips
def test_linear_functional_chain_becomes_sequential_and_saves(tmp_path):
    inputs = keras.Input(shape=(None,), dtype="int32")
    outputs = keras.layers.Dense(2)(keras.layers.GRU(5)(keras.layers.Embedding(VOCABULARY, 4, mask_zero=True)(inputs)))
    keras_model = randomize(keras.Model(inputs, outputs), 10)
    keras_model.save(tmp_path / "chain.keras")
    model = from_keras(tmp_path / "chain.keras")
    assert isinstance(model, seqlab.Sequential)
    ids = padded_ids(11)
    assert_close(predict(model, ids), keras_outputs(keras_model, ids))
    model.save(tmp_path / "saved")
    assert_close(predict(seqlab.load_model(tmp_path / "saved").eval(), ids), keras_outputs(keras_model, ids))


def test_graph_model_round_trips_through_seqlab_saving(tmp_path):
    keras_model = randomize(attention_graph(keras), 12)
    keras_model.save(tmp_path / "attention.keras")
    model = from_keras(tmp_path / "attention.keras")
    model.save(tmp_path / "saved")
    ids = padded_ids(13)
    assert_close(predict(seqlab.load_model(tmp_path / "saved").eval(), ids), keras_outputs(keras_model, ids))


def test_imported_graph_exports_to_onnx(tmp_path):
    """Keras → seqlab → ONNX: the attention classifier runs in onnxruntime with Keras' numbers."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install -e '.[onnx]')")
    from seqlab.interop import export_onnx

    keras_model = randomize(attention_graph(keras), 20)
    keras_model.save(tmp_path / "attention.keras")
    export_onnx(from_keras(tmp_path / "attention.keras"), tmp_path / "attention.onnx")
    runner = onnxruntime.InferenceSession(str(tmp_path / "attention.onnx"), providers=["CPUExecutionProvider"])
    for ids in (padded_ids(21), padded_ids(22, batch=3, time=6)):
        (result,) = runner.run(None, {"inputs": ids.astype("int64")})
        np.testing.assert_allclose(result, keras_outputs(keras_model, ids), atol=1e-4, rtol=0)


def test_reads_without_tensorflow(tmp_path):
    keras_model = randomize(keras.Sequential([keras.Input(shape=(None,), dtype="int32"), *char_lstm(keras.layers)]), 14)
    paths = save_all(keras_model, tmp_path, "lm")
    ids = padded_ids(15)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "expected.npy", keras_outputs(keras_model, ids))
    script = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; sys.modules['tf_keras'] = None\n"
        "import numpy as np, torch\n"
        "from seqlab.interop import from_keras\n"
        f"ids = torch.from_numpy(np.load({str(tmp_path / 'ids.npy')!r})).long()\n"
        f"expected = np.load({str(tmp_path / 'expected.npy')!r})\n"
        f"for path in {[paths['.keras'], paths['.h5']]!r}:\n"
        "    with torch.no_grad(): out = from_keras(path)(ids).numpy()\n"
        "    assert np.abs(out - expected).max() < 1e-5, path\n"
        "assert 'tensorflow' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_import_keras_command(tmp_path):
    import argparse

    keras_model = randomize(keras.Sequential([keras.Input(shape=(None,), dtype="int32"),
                                              *bilstm_classifier(keras.layers)]), 16)
    paths = save_all(keras_model, tmp_path, "bilstm")
    parser = argparse.ArgumentParser(prog="seqlab")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["import-keras", paths[".keras"], str(tmp_path / "imported")])
    assert args.handler(args) == 0
    ids = padded_ids(17)
    expected = keras_outputs(keras_model, ids)
    assert_close(predict(seqlab.load_model(tmp_path / "imported").eval(), ids), expected)

    randomize(keras_model, 18).save_weights(paths[".weights.h5"])  # new weights into the saved seqlab model
    args = parser.parse_args(["import-keras", paths[".weights.h5"], str(tmp_path / "updated"),
                              "--into", str(tmp_path / "imported")])
    assert args.handler(args) == 0
    assert_close(predict(seqlab.load_model(tmp_path / "updated").eval(), ids), keras_outputs(keras_model, ids))

    args = parser.parse_args(["import-keras", str(tmp_path / "missing.keras"), str(tmp_path / "x")])
    assert args.handler(args) == 1


# ---------------------------------------------------------------------------- clear errors
@pytest.fixture(scope="module")
def lstm_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("files")
    keras_model = randomize(keras.Sequential([keras.Input(shape=(None,), dtype="int32"),
                                              *char_lstm(keras.layers)]), 19)
    return save_all(keras_model, directory, "lm")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zip without weights"])
def test_corrupt_files_give_clear_errors(lstm_files, tmp_path, damage):
    broken = tmp_path / ("broken.keras" if damage != "garbage" else "broken.h5")
    if damage == "truncated":
        data = open(lstm_files[".keras"], "rb").read()
        broken.write_bytes(data[: len(data) // 2])
        match = "damaged .keras archive"
    elif damage == "garbage":
        broken.write_bytes(b"this is not a model at all")
        match = "neither a Keras 3 archive"
    else:
        with zipfile.ZipFile(broken, "w") as archive:
            archive.writestr("config.json", "{}")
        match = "lacks \\['model.weights.h5'\\]"
    with pytest.raises(KerasImportError, match=match):
        from_keras(broken)
    truncated_h5 = tmp_path / "truncated.h5"
    truncated_h5.write_bytes(open(lstm_files[".h5"], "rb").read()[:3000])
    with pytest.raises(KerasImportError, match="truncated or corrupt"):
        from_keras(truncated_h5)
    with pytest.raises(KerasImportError, match="holds only weights"):
        from_keras(lstm_files[".weights.h5"])


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_unsupported_layer_and_option_are_named(tmp_path):
    conv = keras.Sequential([keras.Input(shape=(None, 4)), keras.layers.Conv1D(3, 2, name="conv"),
                             keras.layers.LSTM(2)])
    conv.save(tmp_path / "conv.keras")
    with pytest.raises(UnsupportedKerasError, match="'conv' is a Conv1D, which seqlab cannot import"):
        from_keras(tmp_path / "conv.keras")
    rms = keras.Sequential([keras.Input(shape=(None, 4)),
                            keras.layers.LayerNormalization(rms_scaling=True, name="norm")])
    rms.save(tmp_path / "rms.keras")
    with pytest.raises(UnsupportedKerasError, match=r"'norm' \(LayerNormalization\): option "
                                                    "rms_scaling=True is not supported"):
        from_keras(tmp_path / "rms.keras")


def test_weight_of_wrong_shape_names_the_weight_and_changes_nothing(lstm_files):
    twin = seqlab.Sequential([layers.Embedding(VOCABULARY, 8), layers.LSTM(13, return_sequences=True),
                              layers.Dense(VOCABULARY)])
    twin.build((None, None))
    before = [w.copy() for w in twin.get_weights()]
    with pytest.raises(KerasImportError, match=r"weight 'lstm/lstm_cell/kernel' of layer 'lstm' has shape "
                                               r"\(8, 48\) in the file, but the layer expects \(8, 52\)"):
        from_keras(lstm_files[".weights.h5"], model=twin)
    with pytest.raises(KerasImportError, match="expects"):
        from_keras(lstm_files[".keras"], model=twin)
    assert all(np.array_equal(a, b) for a, b in zip(before, twin.get_weights()))  # never a partial model
    missing_layer = seqlab.Sequential([layers.Embedding(VOCABULARY, 8), layers.Dense(VOCABULARY)])
    missing_layer.build((None, None))
    with pytest.raises(KerasImportError, match="no layer of the model takes"):
        from_keras(lstm_files[".weights.h5"], model=missing_layer)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Keras file"):
        from_keras(tmp_path / "nothing.keras")
