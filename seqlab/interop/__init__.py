"""Interoperability: Keras models and weights in, ONNX graphs out.

    >>> from seqlab.interop import export_onnx, from_keras
    >>> model = from_keras("sentiment.keras")          # .keras, .h5, or .weights.h5 with model=
    >>> export_onnx(model, "sentiment.onnx")           # runs in onnxruntime

`from_keras` needs h5py (no TensorFlow); `export_onnx` needs onnx, and
onnxruntime to verify the graph (`pip install 'seqlab[onnx]'`). Importing this
package also registers `KerasGraph`, so `seqlab.load_model` can rebuild
imported functional graphs.
"""

from seqlab.interop.keras_import import (KerasGraph, KerasImportError, UnsupportedKerasError, from_keras,
                                         layer_from_keras, load_keras_weights)
from seqlab.interop.onnx_export import OnnxExportError, export_onnx

__all__ = ["KerasGraph", "KerasImportError", "OnnxExportError", "UnsupportedKerasError", "export_onnx",
           "from_keras", "layer_from_keras", "load_keras_weights"]
