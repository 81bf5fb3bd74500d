"""`Model`: Keras' compile / fit / evaluate / predict on any `torch.nn.Module`.

Subclass `Model` instead of `nn.Module` and write `forward(x)` as usual
(`Sequential` does this); the model gains

- `compile(optimizer, loss, metrics)`: Keras names or objects, the device
  (CUDA when available, else CPU) and optional mixed precision on GPU;
- `fit(...)` → `History`, with validation, callbacks, progress, checkpoints
  and exact resumption (`resume_from=`), truncated BPTT for stateful models
  (`tbptt=k`) and multi-process training under torchrun (`distributed=`);
- `evaluate`, `predict` (batched, NumPy out), `train_on_batch`,
  `test_on_batch`, `predict_on_batch`, `save(directory)`, `summary()`.

Train mode (`model.train()`/`model.eval()`) tells layers such as Dropout
whether they are training; `forward` receives only `x`. The loss of one
batch is Keras' mean over its (unmasked) elements plus the layers'
regularization penalties (`layer.losses`).

    >>> model = MyModel()                               # a Model subclass
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=10, validation_split=0.1)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch

from seqlab import saving, serialization
from seqlab.summary import parameter_table
from seqlab.training import distributed as distributed_module
from seqlab.training import losses as losses_module
from seqlab.training import metrics as metrics_module
from seqlab.training import optimizers as optimizers_module
from seqlab.training.callbacks import Callback, History
from seqlab.training.data_adapter import ArrayData, adapt, to_tensor
from seqlab.training.loop import FitRun, Trainer, evaluate_batches, resolve_resume, training_batches
from seqlab.training.state import read_checkpoint
from seqlab.training.progress import make_progress

__all__ = ["Compiled", "Model"]


@dataclass
class Compiled:
    """What `compile()` fixed: optimizer, loss, metrics, device, autocast dtype, and its savable config."""

    optimizer: optimizers_module.Optimizer | None  # None only for predicting with an uncompiled model
    loss: losses_module.Loss | None
    metrics: list[metrics_module.Metric]
    device: torch.device
    precision: torch.dtype | None = None
    config: dict[str, Any] | None = None


class Model(torch.nn.Module):
    """A `torch.nn.Module` with Keras' training API (see the module docstring).

        >>> model = Classifier()          # class Classifier(Model) with a forward(x)
        >>> model.compile("adam", BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
        >>> model.fit(x, y, epochs=5).history["accuracy"][-1] > 0.9
        True
    """

    stop_training: bool = False
    history: History | None = None
    tokenizer: Any = None
    _compiled: Compiled | None = None
    _trainer: Trainer | None = None

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Iterable[Any] | None = None, *,
                device: str | torch.device | None = None, mixed_precision: bool | str | None = None) -> None:
        """Fix the optimizer, loss and metrics; move the model to `device`.

        `optimizer`: a name ("adam", "rmsprop", "sgd", "adagrad", "adamw", ...)
        with Keras' defaults, a seqlab `Optimizer` or a `torch.optim` optimizer.
        `loss`: a name ("binary_crossentropy", "sparse_categorical_crossentropy",
        "categorical_crossentropy", "mse", "mae"), a `Loss` or a function.
        `metrics`: names ("accuracy", "perplexity", "bpc", ...) or `Metric`s.
        `device`: default CUDA when available, else CPU. `mixed_precision`:
        True, "bf16" or "fp16" for autocast on GPU (a GradScaler with fp16).
        """
        loss_object = losses_module.get(loss)
        metrics = list(metrics or [])
        optimizer_object = optimizers_module.get(optimizer)
        resolved_device = _resolve_device(device)
        self._compiled = Compiled(
            optimizer=optimizer_object,
            loss=loss_object,
            metrics=[metrics_module.get(m, loss_object) for m in metrics],
            device=resolved_device,
            precision=_resolve_precision(mixed_precision, resolved_device),
            config=_compile_config(optimizer_object, loss if isinstance(loss, str) else loss_object,
                                   metrics, mixed_precision),
        )
        self._trainer = None
        self.to(resolved_device)

    def loss_sum_and_count(self, loss: losses_module.Loss, y_true: Any, y_pred: Any,
                           sample_weight: torch.Tensor | None, mask: torch.Tensor | None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two parts of one batch's loss, `(Σ w ℓ, N)`: by default the compiled `loss`'s.

        Override it for a loss that needs the model's own weights, as Keras 3's
        `Model.compute_loss` is overridden: a CRF's negative log-likelihood
        reads the transition scores (see `seqlab.apps.tag.model.Tagger`). The
        trainer divides the sum by the count of the whole (global) batch.
        """
        return loss.sum_and_count(y_true, y_pred, sample_weight, mask)

    @property
    def optimizer(self) -> optimizers_module.Optimizer:
        return self._require_compiled("optimizer").optimizer

    @property
    def compiled_loss(self) -> losses_module.Loss:
        return self._require_compiled("compiled_loss").loss

    @property
    def metrics_names(self) -> list[str]:
        compiled = self._require_compiled("metrics_names")
        return ["loss", *(m.name for m in compiled.metrics)]

    def get_compile_config(self) -> dict[str, Any] | None:
        """The arguments of `compile()` as JSON (None if not compiled or not savable)."""
        return self._compiled.config if self._compiled is not None else None

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile with a config from `get_compile_config()` (used by `load_model`), on the default device."""
        loss = losses_module.get(config["loss"])
        self.compile(optimizer=optimizers_module.get(config["optimizer"]), loss=loss,
                     metrics=[metrics_module.get(m, loss) for m in config["metrics"]],
                     mixed_precision=config.get("mixed_precision"))
        self._compiled.config = config

    # -------------------------------------------------------------------- fit
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto", callbacks: Iterable[Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            initial_epoch: int = 0, sample_weight: Any = None, *, seed: int | None = None,
            tbptt: int | bool | None = None, resume_from: Any = None, distributed: bool | None = None,
            on_nonfinite: str = "stop", terminate_on_nan: bool | None = None) -> History:
        """Train for `epochs` epochs (Keras' arguments) and return the `History`.

        Beyond Keras: `seed` fixes the data order (drawn from torch's RNG when
        None); `tbptt=k` cuts `(streams, time)` arrays into consecutive k-step
        windows for stateful models; `resume_from` (a checkpoint directory or a
        `ModelCheckpoint`) continues an interrupted run exactly; `distributed`
        (None: when launched by torchrun) trains data-parallel with
        `batch_size` as the global batch; `on_nonfinite` decides what a NaN or
        infinite loss does before it corrupts the weights: "stop" training with a
        warning, "raise" `NonFiniteLossError`, or "ignore" it and apply the update
        (`terminate_on_nan=False`, the older spelling, is "ignore").
        """
        compiled = self._require_compiled("fit")
        group, device = distributed_module.setup(distributed, compiled.device)
        compiled.device = device
        self.to(device)
        checkpoint = resolve_resume(resume_from)
        if checkpoint is not None and initial_epoch:
            raise ValueError("Pass either resume_from (which sets the starting epoch) or initial_epoch, not both.")
        state = read_checkpoint(checkpoint) if checkpoint is not None else None
        seed = state["seed"] if state is not None else group.broadcast_int(_fresh_seed() if seed is None else seed)
        train, validation = training_batches(
            x, y, sample_weight, batch_size=batch_size, shuffle=shuffle, seed=seed,
            validation_split=validation_split, validation_data=validation_data, tbptt=tbptt, group=group)
        trainer = Trainer(self, compiled, group, on_nonfinite="ignore" if terminate_on_nan is False else on_nonfinite)
        trainer.prepare(train.first)  # builds the model and binds the optimizer: the state restores into them
        trainer.forward_module = distributed_module.wrap(self, group, device)
        run = FitRun(self, trainer, train, validation, list(callbacks or []),
                     make_progress(verbose, is_main=group.is_main),
                     epochs=epochs, seed=seed, verbose=verbose, stateful_windows=bool(tbptt))
        self.history = run.run(initial_epoch, state)
        return self.history

    # ------------------------------------------------------- evaluate, predict
    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int | str = "auto",
                 sample_weight: Any = None, return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Loss and metrics on the data: a float without metrics, else `[loss, *metrics]` (or a dict)."""
        trainer = self._single_trainer("evaluate")
        group = distributed_module.current()
        trainer.group = group
        batches = adapt(x, y, sample_weight, batch_size=batch_size, group=group, role="evaluation data")
        trainer.prepare(batches.first)
        progress = make_progress(verbose, is_main=group.is_main)
        try:
            logs = evaluate_batches(trainer, batches, progress=progress)
        finally:
            progress.close()
        return _keras_result(logs, return_dict)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = 0) -> Any:
        """The model's outputs for `x` as NumPy arrays, computed in batches (eval mode, no gradients)."""
        trainer = self._single_trainer("predict", compiled_required=False)
        batches = adapt(x, batch_size=batch_size, role="x")
        progress = make_progress(verbose)
        progress.begin("Predict", batches.steps)
        outputs = []
        try:
            for batch in batches.epoch(0):
                outputs.append(trainer.predict_step(batch.x))
                progress.advance({}, 0, "samples")
            progress.end({})
        finally:
            progress.close()
        return _to_numpy(_concatenate(outputs))

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs for one batch `x` as NumPy arrays."""
        return _to_numpy(self._single_trainer("predict_on_batch", compiled_required=False)
                         .predict_step(to_tensor(x)))

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One update on one batch; returns its loss (and metrics), as Keras 2 with reset_metrics=True."""
        trainer = self._single_trainer("train_on_batch")
        batch = ArrayData(x, y, sample_weight, role="x").take(slice(None))
        trainer.prepare(lambda: batch)
        trainer.reset_metrics()
        trainer.train_step(batch, epoch=0, step=0)
        return _keras_result(trainer.logs(), return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Loss (and metrics) on one batch, without updating."""
        trainer = self._single_trainer("test_on_batch")
        batch = ArrayData(x, y, sample_weight, role="x").take(slice(None))
        trainer.prepare(lambda: batch)
        trainer.reset_metrics()
        trainer.test_step(batch)
        return _keras_result(trainer.logs(), return_dict)

    # ------------------------------------------------------------ save, show
    def save(self, directory: Any, *, tokenizer: Any = None) -> None:
        """Write config.json and model.safetensors to `directory` (only rank 0 writes in a distributed run)."""
        if distributed_module.is_main_process():
            saving.save_model(self, directory, tokenizer=tokenizer)

    def summary(self, line_length: int = 65, print_fn: Callable[[str], Any] | None = print) -> str:
        """Print (and return) Keras' table of parameter counts per top-level child module."""
        return parameter_table(self, print_fn=print_fn, line_length=line_length)

    # ---------------------------------------------------------------- helpers
    def _require_compiled(self, what: str) -> Compiled:
        if self._compiled is None:
            raise RuntimeError(f"{type(self).__name__}.{what} needs a compiled model: call "
                               "model.compile(optimizer=..., loss=..., metrics=[...]) first.")
        return self._compiled

    def _single_trainer(self, what: str, compiled_required: bool = True) -> Trainer:
        if compiled_required or self._compiled is not None:
            compiled = self._require_compiled(what)
        else:  # predicting with an uncompiled model: run where its weights are
            compiled = Compiled(optimizer=None, loss=None, metrics=[], device=_device_of(self))
        if self._trainer is None or self._trainer.compiled is not compiled:
            self._trainer = Trainer(self, compiled)
        return self._trainer


# -------------------------------------------------------------------- helpers
def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_precision(mixed_precision: bool | str | None, device: torch.device) -> torch.dtype | None:
    if not mixed_precision:
        return None
    choices = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if mixed_precision is not True and mixed_precision not in choices:
        raise ValueError(f"mixed_precision must be True, 'bf16' or 'fp16', got {mixed_precision!r}.")
    if device.type != "cuda":
        warnings.warn(f"mixed_precision={mixed_precision!r} needs a CUDA device; on {device} training "
                      "stays in float32.", stacklevel=3)
        return None
    if mixed_precision is True:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return choices[mixed_precision]


def _compile_config(optimizer: optimizers_module.Optimizer, loss: str | losses_module.Loss, metrics: list[Any],
                    mixed_precision: Any) -> dict[str, Any] | None:
    """The compile arguments as JSON (not the device: a loaded model goes where it is loaded), or None
    when one of them is a plain object that cannot be saved. Names stay names (a metric's name is
    resolved against the loss again); objects are specs of the one registry."""
    def spec(value: Any) -> Any:
        return value if isinstance(value, str) else serialization.serialize(value)

    try:
        return {"optimizer": spec(optimizer), "loss": spec(loss), "metrics": [spec(m) for m in metrics],
                "mixed_precision": mixed_precision}
    except TypeError:
        return None


def _fresh_seed() -> int:
    return int(torch.randint(0, 2**62, (1,)).item())


def _device_of(model: torch.nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _keras_result(logs: dict[str, float], return_dict: bool) -> float | list[float] | dict[str, float]:
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _concatenate(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outputs)
    if isinstance(first, (tuple, list)):
        return type(first)(_concatenate([o[i] for o in outputs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concatenate([o[k] for o in outputs]) for k in first}
    raise TypeError(f"predict cannot collect outputs of type {type(first).__name__}.")


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value
