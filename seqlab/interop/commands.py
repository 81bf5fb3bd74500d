"""The `seqlab import-keras` and `seqlab export onnx` commands.

    seqlab import-keras MODEL.keras OUT_DIR                  # .keras or Keras 2 .h5 → a seqlab model directory
    seqlab import-keras W.weights.h5 OUT_DIR --into MODEL_DIR  # Keras weights into a saved seqlab model
    seqlab export onnx MODEL_DIR OUT.onnx [--mode auto|sequence|step|translator]

`add_parser(subcommands)` adds both to the `seqlab` command (see seqlab/cli.py);
each handler returns the exit status and reports errors in one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from seqlab.commandline import add_command_group
from seqlab.interop.keras_import import from_keras
from seqlab.interop.onnx_export import OnnxExportError, export_onnx
from seqlab.saving import load_model, save_model


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Add `import-keras` and `export onnx` to the `seqlab` command's subcommands."""
    importer = subcommands.add_parser(
        "import-keras", help="convert a Keras model (.keras, .h5) or Keras weights into a seqlab model directory",
        description="Read a Keras model saved as .keras (Keras 3) or .h5 (Keras 2 / tf.keras) without "
                    "TensorFlow, and save it as a seqlab model directory (load it with seqlab.load_model).")
    importer.add_argument("model", help="the Keras file: MODEL.keras, MODEL.h5, or WEIGHTS.weights.h5 with --into")
    importer.add_argument("out_dir", help="the seqlab model directory to write")
    importer.add_argument("--into", metavar="MODEL_DIR",
                          help="a saved seqlab model with the same layers, to fill with the file's weights")
    importer.set_defaults(handler=_import_keras)

    _, formats = add_command_group(subcommands, "export", help="export a saved seqlab model to another format",
                                   description="Export a saved seqlab model to another format.", dest="format",
                                   metavar="FORMAT")
    onnx = formats.add_parser(
        "onnx", help="write an ONNX graph (dynamic batch and sequence length) that onnxruntime runs",
        description="Export a saved seqlab model to ONNX. --mode auto exports one generation step (ids, h, c → "
                    "logits, next_h, next_c) for a language model, (source, target_in → logits) for a "
                    "translator, and the whole sequence (inputs → outputs) otherwise.")
    onnx.add_argument("model_dir", help="a directory written by model.save() or a checkpoint")
    onnx.add_argument("out", help="the .onnx file to write")
    onnx.add_argument("--mode", choices=("auto", "sequence", "step", "translator"), default="auto",
                      help="what to export (default: auto)")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    onnx.add_argument("--no-verify", action="store_true",
                      help="skip running the graph in onnxruntime against seqlab after writing it")
    onnx.set_defaults(handler=_export_onnx)


def _import_keras(args: argparse.Namespace) -> int:
    try:
        into = _load(args.into) if args.into else None
        model = from_keras(args.model, model=into)
        save_model(model, args.out_dir)
    except (OSError, ValueError) as error:
        print(f"seqlab import-keras: {error}", file=sys.stderr)
        return 1
    parameters = sum(p.numel() for p in model.parameters())
    print(f"Imported {args.model} as a {type(model).__name__} with {parameters:,} parameters into {args.out_dir}")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    try:
        model = _load(args.model_dir)
        path = export_onnx(model, args.out, mode=args.mode, opset=args.opset, verify=not args.no_verify)
    except (OSError, ValueError, OnnxExportError) as error:
        print(f"seqlab export onnx: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def _load(directory: str) -> Any:
    """Load a seqlab model directory (`load_model` imports the modules that define saved classes)."""
    return load_model(directory, compile=False)
