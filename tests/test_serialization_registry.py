"""The one registry (`seqlab.serialization`): specs record their module, format-1 specs resolve by name."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from seqlab import initializers, layers, serialization
from seqlab.serialization import SerializationError, deserialize, register_serializable, serialize
from seqlab.training import Adam, CosineDecay, optimizers

SEQLAB = Path(serialization.__file__).parent


def test_a_spec_records_module_class_name_and_config_and_round_trips():
    spec = serialize(layers.LSTM(3, return_sequences=True))
    assert (spec["module"], spec["class_name"]) == ("seqlab.layers.recurrent", "LSTM")
    assert spec["config"]["kernel_initializer"] == {"module": "seqlab.initializers", "class_name": "GlorotUniform",
                                                    "config": {"seed": None}}
    again = deserialize(spec, expected=layers.Layer)
    assert type(again) is layers.LSTM and again.get_config() == spec["config"]
    assert serialize(None) is None


def test_a_format1_spec_without_module_is_found_by_name_among_its_kind():
    assert type(initializers.get({"class_name": "Orthogonal", "config": {"gain": 2.0}})) is initializers.Orthogonal
    with pytest.raises(SerializationError, match="The saved layer is a 'Orthogonal', which is not a registered"):
        deserialize({"class_name": "Orthogonal", "config": {}}, expected=layers.Layer, what="layer")


def test_a_class_whose_module_moved_is_found_by_its_registered_name():
    spec = {"module": "seqlab.layers.gone_since", "class_name": "Dense", "config": {"units": 2}}
    assert type(deserialize(spec, expected=layers.Layer)) is layers.Dense


def test_only_seqlab_modules_are_imported_by_a_spec():
    assert "tabnanny" not in sys.modules
    not_imported = r"the module 'tabnanny' that defined it is not imported.*defines it \(tabnanny\) before"
    with pytest.raises(SerializationError, match=not_imported):
        deserialize({"module": "tabnanny", "class_name": "NannyNag", "config": {}})
    assert "tabnanny" not in sys.modules  # a config file cannot make seqlab import arbitrary code


def test_two_classes_of_one_name_are_told_apart_by_module():
    first = type("Twin", (layers.Layer,), {"__module__": "project_a.layers"})
    second = type("Twin", (layers.Layer,), {"__module__": "project_b.layers"})
    assert serialize(first())["module"] == "project_a.layers"
    assert type(deserialize(serialize(second()))) is second
    with pytest.raises(SerializationError, match="'Twin' is ambiguous"):
        deserialize({"class_name": "Twin", "config": {}})


def test_register_serializable_names_a_class_and_refuses_one_without_configs():
    @register_serializable(name="tests>Vocabulary")
    class Vocabulary:
        def __init__(self, words):
            self.words = words

        def get_config(self):
            return {"words": self.words}

        @classmethod
        def from_config(cls, config):
            return cls(**config)

    spec = serialize(Vocabulary(["a", "b"]))
    assert spec["class_name"] == "tests>Vocabulary" and deserialize(spec).words == ["a", "b"]
    with pytest.raises(TypeError, match="Plain cannot be registered: it has no get_config"):
        register_serializable(type("Plain", (), {}))
    with pytest.raises(TypeError, match="Plain cannot be saved: it is not registered"):
        serialize(type("Plain", (), {"get_config": lambda self: {}})())


def test_an_optimizer_with_a_schedule_round_trips():
    optimizer = Adam(learning_rate=CosineDecay(0.0, decay_steps=10, warmup_target=1e-2, warmup_steps=2), clipnorm=1.0)
    again = optimizers.get(serialize(optimizer))
    assert type(again) is Adam and type(again.schedule) is CosineDecay and again.clipping == ("clipnorm", 1.0)
    assert again.get_config() == optimizer.get_config()


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {f"{node.module}.{alias.name}" if node.module == "seqlab" else node.module
                      for alias in node.names}
    return names


def test_the_registry_and_the_version_import_no_seqlab_module_and_saving_no_concrete_class():
    assert not any(name.startswith("seqlab") for name in _imports(SEQLAB / "serialization.py"))
    assert _imports(SEQLAB / "version.py") == set()
    seqlab_imports = {name for name in _imports(SEQLAB / "saving.py") if name.startswith("seqlab")}
    assert seqlab_imports == {"seqlab.files", "seqlab.serialization", "seqlab.version"}
    assert not any(name.startswith("seqlab") for name in _imports(SEQLAB / "files.py"))
    assert "_REGISTERING_MODULES" not in (SEQLAB / "saving.py").read_text()


def test_a_bidirectional_layer_round_trips_with_keras_direction_names():
    """Keras names the directions forward_NAME and backward_NAME; a round trip keeps both names."""
    original = layers.Bidirectional(layers.LSTM(3, name="encoder"))
    rebuilt = deserialize(serialize(deserialize(serialize(original))))
    for layer in (original, rebuilt):
        assert (layer.forward_layer.name, layer.backward_layer.name) == ("forward_encoder", "backward_encoder")
        assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
