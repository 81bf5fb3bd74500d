"""Callbacks: Keras' hooks into the training loop, and the ones people reach for.

A callback overrides any of `on_train_begin/end(logs)`,
`on_epoch_begin/end(epoch, logs)`, `on_train_batch_begin/end(batch, logs)`,
`on_test_begin/end(logs)`; it sees `self.model`, `self.params` (epochs,
steps, verbose) and sets `self.model.stop_training = True` to stop. Epoch logs
hold `loss`, the metrics and their `val_` twins, as in `History.history`.

A callback that keeps state across epochs (EarlyStopping's patience counter,
the best value seen) returns it from `state_dict()`; checkpoints store it so
a resumed run decides exactly as an uninterrupted one would.

`fit` runs the user's callbacks in the order given, then `History`, then any
`ModelCheckpoint` (so a checkpoint holds everyone's state for its epoch).

    >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    >>> checkpoints = ModelCheckpoint("runs/lm")          # runs/lm/last and runs/lm/best
    >>> model.fit(x, y, validation_split=0.1, epochs=50, callbacks=[stop, checkpoints])
"""

from __future__ import annotations

import abc
import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from seqlab import saving, serialization
from seqlab.files import write_atomically
from seqlab.training.distributed import is_main_process
from seqlab.training.state import write_checkpoint

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "JSONLogger",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
]


class Callback:
    """Base class: every hook is a no-op; override the ones you need.

        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs=None): print(epoch, logs["loss"])
    """

    model: Any = None
    params: dict[str, Any] = {}
    run: Any = None  # the running fit: its progress display, and `checkpoint_state(epochs_done)`

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_begin(self, logs: dict | None = None) -> None: ...
    def on_test_end(self, logs: dict | None = None) -> None: ...

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint must remember of this callback (None: nothing)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def say(self, text: str) -> None:
        """Print a message through the run's progress display (main process only)."""
        progress = getattr(self.run, "progress", None)
        if progress is not None:
            progress.message(text)
        elif is_main_process():
            print(text)


class CallbackList:
    """Calls a hook on every callback in order; collects and restores their states.

        >>> callbacks = CallbackList([History()], model=model, params={"epochs": 3})
        >>> callbacks.fire("on_epoch_end", 0, {"loss": 0.3})
    """

    def __init__(self, callbacks: Iterable[Callback], model: Any, params: dict[str, Any], run: Any = None):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.model, callback.params, callback.run = model, params, run

    def fire(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def of_type(self, kind: type) -> list[Any]:
        return [c for c in self.callbacks if isinstance(c, kind)]

    def override(self, *hooks: str) -> bool:
        """Whether any callback implements one of `hooks` (rather than inheriting Callback's no-op)."""
        return any(getattr(type(c), hook) is not getattr(Callback, hook) for c in self.callbacks for hook in hooks)

    def state_dict(self) -> dict[str, Any]:
        return {key: c.state_dict() for key, c in self._keyed() if c.state_dict() is not None}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        for key, callback in self._keyed():
            if key in states:
                callback.load_state_dict(states[key])

    def _keyed(self) -> list[tuple[str, Callback]]:
        # Keyed by class and occurrence ("EarlyStopping", "EarlyStopping#2"): stable if others are added.
        counts: dict[str, int] = {}
        keyed = []
        for callback in self.callbacks:
            name = type(callback).__name__
            counts[name] = counts.get(name, 0) + 1
            keyed.append((name if counts[name] == 1 else f"{name}#{counts[name]}", callback))
        return keyed


class History(Callback):
    """Records epoch logs: `history.history["val_loss"][e]` is epoch e's validation loss.

        >>> history = model.fit(x, y, epochs=3, validation_split=0.2)
        >>> sorted(history.history)
        ['loss', 'val_loss']
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stop_reason: str | None = None  # why training ended early (a non-finite loss), if it did

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.epoch = list(state["epoch"])


class _Monitor:
    """Which way a monitored value improves: "min", "max", or "auto" (max for accuracies)."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}.")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.warned = False

    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def value(self, logs: dict | None, owner: str) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None and not self.warned:
            self.warned = True
            warnings.warn(f"{owner} monitors {self.monitor!r}, which is not in the logs "
                          f"(available: {sorted(logs or {})}); it does nothing this epoch. Monitor one "
                          "of those, or pass validation data for 'val_' values.", stacklevel=4)
        return value


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs (Keras' rules).

    `restore_best_weights=True` puts back the weights of the best epoch at the
    end of training.

        >>> EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        self.watch = _Monitor(monitor, mode, min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.on_train_begin()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = self.watch.worst()
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = self.watch.value(logs, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = _copy_weights(self.model), epoch
        self.wait += 1
        if self.watch.improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model)
            if self.baseline is None or self.watch.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose:
            self.say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                self.say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        self.stopped_epoch, self.best_weights = state["stopped_epoch"], state["best_weights"]


class ModelCheckpoint(Callback):
    """Write resumable checkpoints: `directory/last` every epoch, `directory/best` when `monitor` improves.

    Each is a complete model directory plus the training state, written
    atomically, so `fit(..., resume_from=directory)` continues the run and
    `load_model(directory / "best")` loads the best model. Without the monitored
    value in the logs only `last` is written. Only rank 0 writes.

        >>> checkpoint = ModelCheckpoint("runs/lm", monitor="val_loss")
        >>> model.fit(x, y, validation_split=0.1, epochs=20, callbacks=[checkpoint], resume_from=checkpoint)
    """

    def __init__(self, directory: str | Path, monitor: str = "val_loss", mode: str = "auto",
                 save_best: bool = True, save_last: bool = True, verbose: int = 0):
        self.directory = Path(directory)
        self.watch = _Monitor(monitor, mode, 0.0)
        self.save_best, self.save_last, self.verbose = save_best, save_last, verbose
        self.best = self.watch.worst()
        self.last_saved: tuple[Path, int] | None = None  # (path, epochs completed)

    @property
    def last_path(self) -> Path:
        return self.directory / "last"

    @property
    def best_path(self) -> Path:
        return self.directory / "best"

    def latest(self) -> Path | None:
        """The `last` checkpoint if one was written (by this or an earlier run), else None."""
        return self.last_path if saving.is_checkpoint(self.last_path) else None

    def on_train_begin(self, logs: dict | None = None) -> None:
        serialization.serialize(self.model)  # fail now, not after the first epoch, if it cannot be saved

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        improved = False
        if self.save_best:
            current = self.watch.value(logs, "ModelCheckpoint")
            improved = current is not None and self.watch.improved(current, self.best)
            if improved:
                self.best = current
        if not is_main_process():
            return
        state = self.run.checkpoint_state(epochs_done=epoch + 1)  # seqlab.training.state: the whole run
        if improved:  # best first: a kill between the two writes redoes this epoch, which improves again
            write_checkpoint(self.model, self.best_path, state)
            if self.verbose:
                self.say(f"Epoch {epoch + 1}: {self.watch.monitor} improved to {self.best:.4f}; "
                         f"saved {self.best_path}")
        if self.save_last:
            write_checkpoint(self.model, self.last_path, state)
            self.last_saved = (self.last_path, epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


class _EpochLog(Callback, abc.ABC):
    """A file of one line per epoch, written atomically (the base of `CSVLogger` and `JSONLogger`).

    `append=False` starts the file at `on_train_begin`; `append=True` adds to
    it. In a resumed run (`fit(resume_from=...)` restores this callback) lines
    of the epoch being written and later ones, which a run killed after
    logging but before its checkpoint left, are dropped first, so every epoch
    has exactly one line.
    """

    header = False  # whether the file's first line is a header

    def __init__(self, filename: str | Path, append: bool = False):
        self.filename, self.append, self.resumed = Path(filename), append, False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.resumed = False
        if is_main_process() and not self.append:
            write_atomically(self.filename, b"")

    def state_dict(self) -> dict[str, Any]:
        return {}  # nothing to remember, but a restore says that this run resumes another

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.resumed = True

    def kept_lines(self, epoch: int) -> list[str]:
        """The file's lines to keep before `epoch`'s: all of them, or in a resumed run those of earlier epochs."""
        return _rows_before(self.filename, epoch if self.resumed else math.inf, self.epoch_of, self.header)

    @abc.abstractmethod
    def epoch_of(self, line: str) -> Any:
        """The epoch a line of the file is for (a line cut short by a crash may raise)."""


class CSVLogger(_EpochLog):
    """Append each epoch's logs to a CSV file (`epoch` first, then the log names, sorted); see `_EpochLog`.

        >>> CSVLogger("runs/lm/log.csv", append=True)   # append=True to continue after a resume
    """

    header = True

    def __init__(self, filename: str | Path, separator: str = ",", append: bool = False):
        super().__init__(filename, append)
        self.separator = separator
        self.columns: list[str] | None = None

    def epoch_of(self, line: str) -> Any:
        return line.split(self.separator, 1)[0]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not is_main_process():
            return
        logs = logs or {}
        earlier = self.kept_lines(epoch)
        if self.columns is None:
            header = earlier[0].rstrip("\r\n").split(self.separator) if earlier else None
            self.columns = header if header and header[0] == "epoch" else ["epoch", *sorted(logs)]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.columns, delimiter=self.separator, extrasaction="ignore")
        if not earlier:
            writer.writeheader()
        writer.writerow({"epoch": epoch, **logs})
        write_atomically(self.filename, ("".join(earlier) + text.getvalue()).encode())


class JSONLogger(_EpochLog):
    """Append each epoch's logs to a JSON-lines file: `{"epoch": 0, "loss": 0.69, ...}` per line; see `_EpochLog`.

        >>> JSONLogger("runs/lm/log.jsonl")
    """

    def epoch_of(self, line: str) -> Any:
        return json.loads(line)["epoch"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if is_main_process():
            line = json.dumps({"epoch": epoch, **(logs or {})}) + "\n"
            write_atomically(self.filename, ("".join(self.kept_lines(epoch)) + line).encode())


def _rows_before(path: Path, epoch: int, epoch_of: Callable[[str], Any], header: bool) -> list[str]:
    """The lines of `path` (its header first) whose epoch is before `epoch`."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines(keepends=True)
    head, rows = (lines[:1], lines[1:]) if header else ([], lines)
    kept = []
    for line in rows:
        try:
            if int(epoch_of(line)) < epoch:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    return head + kept


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to `schedule(epoch, lr)` (or `schedule(epoch)`).

        >>> LearningRateScheduler(lambda epoch, lr: lr if epoch < 10 else lr * 0.9)
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        try:
            rate = self.schedule(epoch, optimizer.learning_rate)
        except TypeError:  # a one-argument schedule, as Keras allows
            rate = self.schedule(epoch)
        if not isinstance(rate, (float, int)) or math.isnan(rate):
            raise ValueError(f"The schedule returned {rate!r} for epoch {epoch}; it must return a number.")
        optimizer.learning_rate = float(rate)
        if self.verbose:
            self.say(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs (Keras' rules).

        >>> ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5)
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau needs factor < 1 (it reduces the rate), got {factor}.")
        self.watch = _Monitor(monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.on_train_begin()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best, self.wait, self.cooldown_counter = self.watch.worst(), 0, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = optimizer.learning_rate
        current = self.watch.value(logs, "ReduceLROnPlateau")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.watch.improved(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and optimizer.learning_rate > self.min_lr:
                optimizer.learning_rate = max(optimizer.learning_rate * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    self.say(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                                     f"to {optimizer.learning_rate:.4e}.")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; raised by the training step before the bad update is applied.

    `fit(on_nonfinite="stop")` (the default) catches it and ends training with a warning;
    `on_nonfinite="raise"` lets it out of `fit`.
    """

    def __init__(self, message: str, epoch: int, step: int, global_step: int, value: float):
        super().__init__(message)
        self.epoch, self.step, self.global_step, self.value = epoch, step, global_step, value


class TerminateOnNaN(Callback):
    """Keras' callback: stop training after a batch whose logged loss is NaN or infinite.

    It acts after that batch's update, as in Keras. `fit` already guards every step by
    default, before the update (`on_nonfinite="stop"`); this callback matters with
    `on_nonfinite="ignore"`, or in code written for Keras.

        >>> model.fit(x, y, epochs=5, on_nonfinite="ignore", callbacks=[TerminateOnNaN()])
    """

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.say(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class TensorBoard(Callback):
    """Write each epoch's logs as TensorBoard scalars under `log_dir` (needs the tensorboard package).

        >>> TensorBoard("runs/lm/tensorboard")
    """

    def __init__(self, log_dir: str | Path = "logs"):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError("The TensorBoard callback needs the tensorboard package: "
                              "pip install tensorboard") from error
        self.log_dir, self._writer_class, self.writer = Path(log_dir), SummaryWriter, None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if is_main_process():
            self.writer = self._writer_class(str(self.log_dir))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.writer is not None:
            for name, value in (logs or {}).items():
                self.writer.add_scalar(name, value, epoch)
            self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.writer is not None:
            self.writer.close()


def _copy_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}

