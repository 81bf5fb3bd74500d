"""Model directories written by seqlab before the serialization registry recorded modules still load.

`tests/fixtures/format1` was written by `make_fixtures.py` (beside it) at commit 155b45d:
a masked Embedding → Bidirectional(LSTM) → GRU(reset_after=False) → Dense model, its
epoch-2 checkpoint, and a char-LM directory carrying a `CharVocabulary` tokenizer.
"""

import json
from pathlib import Path

import numpy as np
import torch

import seqlab

FIXTURES = Path(__file__).parent / "fixtures" / "format1"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def test_a_format1_sequential_loads_with_its_weights_and_compile_settings():
    model = seqlab.load_model(FIXTURES / "sequential")
    model.eval()
    predictions = model.predict(torch.tensor(EXPECTED["inputs"]))
    np.testing.assert_allclose(np.asarray(predictions), np.asarray(EXPECTED["sequential"]), rtol=0, atol=1e-6)
    assert type(model.optimizer).__name__ == "Adam"
    assert model.metrics_names[-1] == "accuracy"


def test_a_format1_checkpoint_resumes(tmp_path):
    model = seqlab.load_model(FIXTURES / "run" / "last")
    generator = torch.Generator().manual_seed(0)  # the data make_fixtures.py trained on
    x = torch.randint(1, 20, (64, 7), generator=generator)
    x[::3, 5:] = 0
    y = torch.randint(0, 3, (64,), generator=generator)
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                        resume_from=FIXTURES / "run" / "last")
    losses = history.history["loss"]
    assert len(losses) == 3 and np.isfinite(losses[2])  # epochs 1-2 from the checkpoint, epoch 3 run now
    saved = json.loads((FIXTURES / "run" / "last" / "training_state.json").read_text())
    assert saved["epoch"] == 2


def test_a_format1_charlm_directory_loads_its_vocabulary():
    model = seqlab.load_model(FIXTURES / "charlm")
    vocabulary = model.tokenizer.vocabulary
    ids = torch.tensor([vocabulary.encode("the sea")])
    assert ids.tolist() == EXPECTED["charlm_inputs"]
    np.testing.assert_allclose(model(ids).detach().numpy(), np.asarray(EXPECTED["charlm"]), rtol=0, atol=1e-6)
