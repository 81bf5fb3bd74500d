"""Real TensorFlow-Keras, the oracle of the parity tests.

CI installs the test extra, so there a missing TensorFlow is an error; on
other machines the parity tests skip with the reason.

    from keras_oracle import tf, keras
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ.get("CI"):
    import keras
    import tensorflow as tf
else:
    tf = pytest.importorskip("tensorflow", reason="TensorFlow-Keras parity tests need tensorflow-cpu "
                             "(pip install -e '.[test]')")
    keras = pytest.importorskip("keras", reason="TensorFlow-Keras parity tests need keras 3")
