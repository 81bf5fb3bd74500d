"""The state of a training run, captured and restored as one dict, in one place.

Everything a run needs to go on exactly as if it had never stopped:

    weights       model.state_dict()
    epoch         epochs completed: the run goes on with epoch `epoch`
    global_step   optimizer steps taken (where a learning-rate schedule stands)
    seed          the data-order seed: epoch e reads its batches in an order fixed by (seed, e)
    optimizer     `Optimizer.state_dict()`: iterations, learning rate, moments (in their parameters' layout)
    callbacks     `CallbackList.state_dict()`: History, EarlyStopping, ReduceLROnPlateau, ModelCheckpoint, ...
    scaler        the GradScaler's state (fp16 on CUDA), else None
    rng           Python's, NumPy's and torch's (CPU, CUDA) generators: dropout masks, random draws

`ModelCheckpoint` writes it with `write_checkpoint` and `fit(resume_from=)` reads it
with `read_checkpoint`. On disk a checkpoint is a model directory (the weights in
model.safetensors) plus the rest as training_state.json/.safetensors, the layout
`seqlab.saving` has always written (format 1), so older checkpoints resume and older
seqlab reads newer ones.

    >>> run_state = RunState(model, model.optimizer, callbacks, scaler=None, seed=7)
    >>> write_checkpoint(model, "runs/x/last", run_state.capture(epochs_done=3))
    >>> run_state.restore(read_checkpoint("runs/x/last"))      # the RNG last
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import torch

from seqlab import saving
from seqlab.seeding import get_rng_state, set_rng_state

__all__ = ["RunState", "read_checkpoint", "write_checkpoint"]

WEIGHTS = "weights"  # the one entry a checkpoint stores as the model directory's weights, not as training state


class _Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class RunState:
    """The live objects whose states make up a run's state (see the module docstring).

    `capture(epochs_done)` returns the dict; its weights are the model's own tensors (not
    copies), so write it or copy it before training goes on. `restore(state)` puts every
    entry back, the RNG states last: nothing may draw from the generators after them.
    """

    def __init__(self, model: torch.nn.Module, optimizer: Any, callbacks: _Stateful,
                 scaler: torch.amp.GradScaler | None, seed: int):
        self.model, self.optimizer, self.callbacks, self.scaler, self.seed = model, optimizer, callbacks, scaler, seed

    def capture(self, epochs_done: int) -> dict[str, Any]:
        return {
            WEIGHTS: self.model.state_dict(),
            "epoch": epochs_done,
            "global_step": self.optimizer.iterations,
            "seed": self.seed,
            "optimizer": self.optimizer.state_dict(),
            "callbacks": self.callbacks.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": get_rng_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get(WEIGHTS) is not None:
            _load_weights(self.model, state[WEIGHTS])
        self.optimizer.load_state_dict(state["optimizer"])
        self.callbacks.load_state_dict(state["callbacks"])
        if state.get("scaler") is not None and self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.seed = state["seed"]
        set_rng_state(state["rng"])


def write_checkpoint(model: torch.nn.Module, directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `model` and a captured `state` to `directory` atomically (the weights as the model's own file)."""
    return saving.save_checkpoint(model, directory, {k: v for k, v in state.items() if k != WEIGHTS})


def read_checkpoint(directory: str | os.PathLike) -> dict[str, Any]:
    """The run state a checkpoint directory holds, weights included (on the CPU)."""
    state = saving.load_training_state(directory)  # names what is missing if this is no checkpoint
    state[WEIGHTS] = saving.read_weights(directory)  # checked: checksum, format, finite values
    state.setdefault("global_step", state["optimizer"]["iterations"])  # written since issue 21
    return state


def _load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    try:
        model.load_state_dict(weights)  # copies into the parameters: their memory layout stays theirs
    except RuntimeError as error:
        raise saving.ModelDirectoryError(
            f"The checkpoint's weights do not fit this {type(model).__name__}: {error}. Resume with a "
            "model built from the same configuration (seqlab.load_model(checkpoint) builds one).") from None
