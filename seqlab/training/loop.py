"""The training loop behind `Model.fit/evaluate/predict`: steps (`Trainer`) and epochs (`FitRun`).

One training step on a `Batch(x, y, sample_weight, mask)`:

    ŷ = model(x)                                   (autocast under mixed precision)
    m = mask ∧ ŷ's own mask (padding)              (read once, then passed on as a value)
    S, N = Σ w ℓ(y, ŷ) over m, count of m          (this process's rows)
    loss = world · S / all_reduce(N) + Σ layer.losses
    if the loss (averaged over processes) is not finite: `on_nonfinite` decides
    backward (DDP averages gradients), clip, step, constraints, detach carried states
    metrics(y, ŷ, w, m)                            (the same elements as the loss)

so that averaged over processes the gradient is that of S_global / N_global,
the single-process loss of the global batch. `on_nonfinite`: "stop" (fit's
default) or "raise" raise `NonFiniteLossError` before the update ("stop": fit
ends with a warning, "raise": the error leaves fit); "ignore" applies it.

    >>> trainer = Trainer(model, model._compiled, on_nonfinite="raise")
    >>> trainer.train_step(batch, epoch=0, step=0)
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from seqlab import saving
from seqlab.kernels.allocator import keep_freed_memory
from seqlab.training.callbacks import Callback, CallbackList, History, ModelCheckpoint, NonFiniteLossError
from seqlab.training.data_adapter import (ArrayData, Batch, Batches, EmptyDataError, adapt, is_batch_iterable,
                                          map_tensors, rows_of)
from seqlab.training.distributed import ProcessGroup
from seqlab.training.metrics import Mean
from seqlab.training.module_walk import outermost_modules_with
from seqlab.training.progress import Progress
from seqlab.training.state import RunState
from seqlab.training.tbptt import WindowBatches, detach_states, reset_states

__all__ = ["FitRun", "NONFINITE_CHOICES", "Trainer", "elements_mask", "regularization_loss", "training_batches"]

NONFINITE_CHOICES = ("stop", "raise", "ignore")


@dataclass
class StepResult:
    """What one step reports: the loss (over all processes) and how much it processed."""

    loss: float
    units: int
    unit: str


class Trainer:
    """Train, test and predict steps of one compiled model (see the module docstring).

        >>> trainer = Trainer(model, model._compiled)
        >>> trainer.test_step(batch); trainer.logs()
        {'loss': 0.69, 'accuracy': 0.5}
    """

    def __init__(self, model: torch.nn.Module, compiled: Any, group: ProcessGroup = ProcessGroup(), *,
                 on_nonfinite: str = "ignore"):
        if on_nonfinite not in NONFINITE_CHOICES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_CHOICES}, got {on_nonfinite!r}.")
        self.model, self.compiled, self.group, self.on_nonfinite = model, compiled, group, on_nonfinite
        self.forward_module = model
        self.loss_tracker = Mean("loss")
        self.scaler = (torch.amp.GradScaler("cuda")
                       if compiled.precision == torch.float16 and compiled.device.type == "cuda" else None)

    # ------------------------------------------------------------ preparation
    def prepare(self, first_batch: Callable[[], Batch]) -> None:
        """Build a lazily built model on `first_batch()` and bind the optimizer to its parameters."""
        if _needs_build(self.model):
            x = self._to_device(first_batch()).x
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad(), self._autocast():
                self.model(x)
            self.model.train(was_training)
            self.model.to(self.compiled.device)
        if self.compiled.optimizer is not None and not self.compiled.optimizer.bound:
            self.compiled.optimizer.bind(self.model)

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: Batch, epoch: int, step: int) -> StepResult:
        batch = self._to_device(batch)
        self.model.train()
        with self._autocast():
            y_pred = self.forward_module(batch.x)
        mask = elements_mask(batch.mask, y_pred)
        loss, result = self._loss(batch, y_pred, mask)
        optimizer = self.compiled.optimizer
        if self.on_nonfinite != "ignore" and not math.isfinite(result.loss):
            raise _non_finite(result.loss, epoch, step, optimizer.iterations)
        optimizer.zero_grad()
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        optimizer.step(self.model, self.scaler)
        detach_states(self.model)
        self._update_metrics(batch, y_pred.detach(), mask, result.loss)
        return result

    @torch.no_grad()
    def test_step(self, batch: Batch) -> StepResult:
        batch = self._to_device(batch)
        self.model.eval()
        with self._autocast():
            y_pred = self.model(batch.x)
        mask = elements_mask(batch.mask, y_pred)
        _, result = self._loss(batch, y_pred, mask)
        self._update_metrics(batch, y_pred, mask, result.loss)
        return result

    @torch.no_grad()
    def predict_step(self, x: Any) -> Any:
        self.model.eval()
        with self._autocast():
            outputs = self.model(self._to_device(x))
        return map_tensors(lambda t: t.detach().float().cpu() if t.is_floating_point() else t.cpu(), outputs)

    def _loss(self, batch: Batch, y_pred: Any, mask: torch.Tensor | None) -> tuple[torch.Tensor, StepResult]:
        if batch.y is None:
            raise ValueError("This batch has no targets y; fit and evaluate need (x, y) pairs.")
        loss_parts = getattr(self.model, "loss_sum_and_count", None)  # a Model may override its loss
        if loss_parts is None:
            total, count = self.compiled.loss.sum_and_count(batch.y, y_pred, batch.sample_weight, mask)
        else:
            total, count = loss_parts(self.compiled.loss, batch.y, y_pred, batch.sample_weight, mask)
        global_count = self.group.all_reduce_sum(count.detach().clone()).clamp_min(1)
        loss = total * self.group.world_size / global_count
        penalty = regularization_loss(self.model)
        if penalty is not None:
            loss = loss + penalty
        averaged = self.group.all_reduce_sum(loss.detach().clone()) / self.group.world_size
        is_sequence = isinstance(y_pred, torch.Tensor) and y_pred.dim() >= 3
        units = int(global_count) if is_sequence else rows_of(batch.x) * self.group.world_size
        return loss, StepResult(float(averaged), units, "tokens" if is_sequence else "samples")

    def _update_metrics(self, batch: Batch, y_pred: Any, mask: torch.Tensor | None, loss: float) -> None:
        self.loss_tracker.update_value(loss, rows_of(batch.x))
        for metric in self.compiled.metrics:
            metric.update(batch.y, y_pred, batch.sample_weight, mask)

    # ---------------------------------------------------------------- results
    def reset_metrics(self) -> None:
        for metric in (self.loss_tracker, *self.compiled.metrics):
            metric.reset()

    def logs(self, all_processes: bool = False) -> dict[str, float]:
        """The running results; summed over processes first when `all_processes`."""
        metrics = (self.loss_tracker, *self.compiled.metrics)
        if all_processes and self.group.is_distributed:
            for metric in metrics:
                self.group.all_reduce_sum(metric.totals)
        return {metric.name: metric.result() for metric in metrics}

    # ---------------------------------------------------------------- helpers
    def _to_device(self, value: Any) -> Any:
        device = self.compiled.device
        return map_tensors(lambda t: t.to(device, non_blocking=device.type == "cuda"), value)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.compiled.precision is None:
            return contextlib.nullcontext()
        return torch.autocast(self.compiled.device.type, dtype=self.compiled.precision)


def elements_mask(batch_mask: torch.Tensor | None, y_pred: Any) -> torch.Tensor | None:
    """The elements that count: the batch's mask AND the padding mask the model's output carries.

    Layers carry a mask on their output tensor (`_keras_mask`, Keras' convention), which any
    new tensor made from it (`y_pred.detach()`, a cast) loses; the step reads it here once and
    hands it to the loss and the metrics as a value. An output mask counts when it covers
    the output's leading axes (`(batch, time)` of `(batch, time, classes)`).
    """
    output_mask = getattr(y_pred, "_keras_mask", None)
    if output_mask is not None and not (output_mask.dim() < y_pred.dim()
                                        and output_mask.shape == y_pred.shape[:output_mask.dim()]):
        output_mask = None  # an input's mask that this output no longer has a time axis for
    if batch_mask is None or output_mask is None:
        return output_mask if batch_mask is None else batch_mask
    batch_mask, output_mask = batch_mask.bool(), output_mask.bool()
    while batch_mask.dim() < output_mask.dim():  # per sample, against per time step
        batch_mask = batch_mask.unsqueeze(-1)
    while output_mask.dim() < batch_mask.dim():
        output_mask = output_mask.unsqueeze(-1)
    return batch_mask & output_mask


def _non_finite(loss: float, epoch: int, step: int, global_step: int) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"Epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}): the loss is {loss}. "
        "Training stopped before applying this step, so the weights are those of the previous "
        "step. Lower the learning rate, clip gradients (clipnorm=1.0), or check the data for "
        "NaN/inf values.", epoch, step, global_step, loss)


def regularization_loss(model: torch.nn.Module) -> torch.Tensor | None:
    """Σ of the `losses` (regularization penalties) of the model's outermost layers that have them."""
    penalties = [penalty for module in outermost_modules_with(model, "losses") for penalty in module.losses]
    return torch.stack([p.float().reshape(()) for p in penalties]).sum() if penalties else None


def _needs_build(model: torch.nn.Module) -> bool:
    if getattr(model, "built", True) is False:
        return True
    parameters = list(model.parameters())
    return not parameters or any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in parameters)


# ---------------------------------------------------------------------- data
def training_batches(x: Any, y: Any, sample_weight: Any, *, batch_size: int | None, shuffle: bool, seed: int,
                     validation_split: float, validation_data: Any, tbptt: int | bool | None,
                     group: ProcessGroup) -> tuple[Batches, Batches | None]:
    """The training batches and (optional) validation batches for `fit`'s arguments.

    With `tbptt=k`, arrays are cut into consecutive k-step windows (never
    shuffled); the batches of a DataLoader are taken as consecutive windows.
    """
    if not _is_arrays(x):
        if validation_split:
            raise ValueError("validation_split needs arrays (x, y); for a DataLoader or dataset pass "
                             "validation_data instead.")
        train = adapt(x, y, sample_weight, batch_size=batch_size, shuffle=shuffle, seed=seed, group=group,
                      role="training data")
        return train, _validation_batches(validation_data, batch_size, None, group)
    data = ArrayData(x, y, sample_weight, role="training data")
    if validation_split and validation_data is None:
        data, validation_data = data.split_last(validation_split)
    if tbptt:
        train: Batches = WindowBatches(data, tbptt, group)
    else:
        train = adapt(data, batch_size=batch_size, shuffle=shuffle, seed=seed, group=group)
    return train, _validation_batches(validation_data, batch_size, tbptt, group)


def _validation_batches(validation: Any, batch_size: int | None, tbptt: int | bool | None,
                        group: ProcessGroup) -> Batches | None:
    if validation is None:
        return None
    if isinstance(validation, (tuple, list)) and not is_batch_iterable(validation):
        if len(validation) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight_val), "
                             f"or a DataLoader; got a sequence of {len(validation)} items.")
        validation = ArrayData(*validation, role="validation data")
    if isinstance(validation, ArrayData) and tbptt:
        return WindowBatches(validation, tbptt, group)
    return adapt(validation, batch_size=batch_size if isinstance(validation, ArrayData) else None,
                 group=group, role="validation data")


def _is_arrays(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray, tuple)) or (isinstance(x, list) and not is_batch_iterable(x))


# --------------------------------------------------------------------- epochs
class FitRun:
    """One call of `fit`: epochs of training and validation, callbacks, progress, checkpoints, resume.

    Callbacks run in the order given, then `History`, then the `ModelCheckpoint`s
    (so that a checkpoint holds every callback's state for its epoch).
    `checkpoint_state(epochs_done)` is the run's whole state (`seqlab.training.state`),
    which `ModelCheckpoint` writes and `run(resume_state)` puts back.
    """

    def __init__(self, model: torch.nn.Module, trainer: Trainer, train: Batches, validation: Batches | None,
                 callbacks: list[Callback], progress: Progress, *, epochs: int, seed: int, verbose: int | str,
                 stateful_windows: bool):
        keep_freed_memory()  # every step frees and re-allocates the same buffers
        self.model, self.trainer, self.train, self.validation = model, trainer, train, validation
        self.progress, self.epochs, self.seed, self.stateful_windows = progress, epochs, seed, stateful_windows
        self.history = History()
        checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
        ordered = [c for c in callbacks if not isinstance(c, ModelCheckpoint)] + [self.history, *checkpoints]
        params = {"epochs": epochs, "steps": train.steps, "verbose": verbose}
        self.callbacks = CallbackList(ordered, model, params, self)
        self.state = RunState(model, trainer.compiled.optimizer, self.callbacks, trainer.scaler, seed)
        # Only a callback acting inside an epoch can ask one process to stop mid-epoch; without one,
        # the processes need not vote after every step.
        self.stops_mid_epoch = self.callbacks.override("on_epoch_begin", "on_train_batch_begin", "on_train_batch_end")

    def checkpoint_state(self, epochs_done: int) -> dict[str, Any]:
        return self.state.capture(epochs_done)

    def run(self, initial_epoch: int, resume_state: dict[str, Any] | None) -> History:
        """Train from `initial_epoch`, or from where `resume_state` (a captured run state) stopped."""
        self.model.stop_training = False
        self.callbacks.fire("on_train_begin", None)  # first: callbacks reset themselves here
        if resume_state is not None:
            self.state.restore(resume_state)
            initial_epoch = resume_state["epoch"]
        logs: dict[str, float] = {}
        try:
            for epoch in range(initial_epoch, self.epochs):
                logs = self._epoch(epoch)
                if self._stopping():
                    break
        except NonFiniteLossError as error:
            if self.trainer.on_nonfinite == "raise":
                raise
            self._report_non_finite_loss(error)
        finally:
            self.progress.close()
        self.callbacks.fire("on_train_end", logs)
        self.trainer.group.barrier()  # the others wait for rank 0's last checkpoint and logs
        return self.history

    def _epoch(self, epoch: int) -> dict[str, float]:
        self.callbacks.fire("on_epoch_begin", epoch, None)
        self.trainer.reset_metrics()
        if self.stateful_windows:
            reset_states(self.model)
        self.progress.begin(f"Epoch {epoch + 1}/{self.epochs}", self.train.steps)
        steps = 0
        for step, batch in enumerate(self.train.epoch(epoch)):
            self.callbacks.fire("on_train_batch_begin", step, None)
            result = self.trainer.train_step(batch, epoch, step)
            batch_logs = self.trainer.logs()
            self.callbacks.fire("on_train_batch_end", step, batch_logs)
            self.progress.advance(batch_logs, result.units, result.unit)
            steps += 1
            if self._stopping() if self.stops_mid_epoch else self.model.stop_training:
                break
        if steps == 0:
            raise EmptyDataError(f"The training data produced no batches in epoch {epoch + 1}. Check that "
                                 "the DataLoader or iterable is not empty.")
        logs = self.trainer.logs(all_processes=True)
        if self.validation is not None:
            logs.update({f"val_{name}": value for name, value in self.evaluate(self.validation).items()})
        self.callbacks.fire("on_epoch_end", epoch, logs)
        self.progress.end(logs)
        return logs

    def _stopping(self) -> bool:
        """Whether a callback of any process set `stop_training` (a clock-based one may on one process only).

        Every process then stops at the same step; one that went on would wait for the others forever.
        """
        group = self.trainer.group
        if group.is_distributed:
            votes = group.all_reduce_sum(torch.tensor([float(self.model.stop_training)]))
            self.model.stop_training = bool(votes.item())
        return self.model.stop_training

    def evaluate(self, batches: Batches) -> dict[str, float]:
        """Loss and metrics over `batches` (states reset first for stateful windows)."""
        return evaluate_batches(self.trainer, batches, self.callbacks, reset=self.stateful_windows)

    def _report_non_finite_loss(self, error: NonFiniteLossError) -> None:
        message = str(error) + self._last_good_checkpoint()
        self.history.stop_reason = message
        self.model.stop_training = True
        self.progress.message(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _last_good_checkpoint(self) -> str:
        for checkpoint in self.callbacks.of_type(ModelCheckpoint):
            if checkpoint.last_saved is not None:
                path, epochs_done = checkpoint.last_saved
                return f" The last good checkpoint is {path} (after epoch {epochs_done})."
            if checkpoint.latest() is not None:
                return f" The last good checkpoint is {checkpoint.latest()}."
        return ""


def evaluate_batches(trainer: Trainer, batches: Batches, callbacks: CallbackList | None = None,
                     progress: Progress | None = None, reset: bool = False) -> dict[str, float]:
    """Run test steps over one pass of `batches`; return the loss and metrics over all processes."""
    trainer.reset_metrics()
    if reset:
        reset_states(trainer.model)
    if callbacks is not None:
        callbacks.fire("on_test_begin", None)
    if progress is not None:
        progress.begin("Evaluate", batches.steps)
    steps = 0
    for batch in batches.epoch(0):
        result = trainer.test_step(batch)
        steps += 1
        if progress is not None:
            progress.advance(trainer.logs(), result.units, result.unit)
    if steps == 0:
        raise EmptyDataError("The evaluation data produced no batches; it is empty.")
    logs = trainer.logs(all_processes=True)
    if reset:
        reset_states(trainer.model)
    if callbacks is not None:
        callbacks.fire("on_test_end", logs)
    if progress is not None:
        progress.end(logs)
    return logs


def resolve_resume(resume_from: Any) -> Path | None:
    """The checkpoint directory `fit(resume_from=...)` names, or None to start fresh.

    A `ModelCheckpoint` resumes from its `last` checkpoint when there is one
    (else starts fresh); a path must hold a checkpoint, or be a
    ModelCheckpoint directory whose `last` does.
    """
    if resume_from is None:
        return None
    if isinstance(resume_from, ModelCheckpoint):
        return resume_from.latest()
    path = Path(resume_from)
    for candidate in (path, path / "last"):
        if saving.is_checkpoint(candidate):
            return candidate
    raise saving.ModelDirectoryError(
        f"resume_from={str(path)!r} holds no checkpoint (expected {saving.STATE_FILE} in it or in "
        f"{path / 'last'}). Pass the directory given to ModelCheckpoint; to resume only when a "
        "checkpoint exists, pass the ModelCheckpoint callback itself: resume_from=checkpoint."
    )
