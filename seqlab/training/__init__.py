"""Training: `Model` (compile/fit/evaluate/predict), losses, metrics, optimizers, callbacks.

    >>> from seqlab.training import Model, EarlyStopping, ModelCheckpoint
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[ModelCheckpoint("runs/x")])

See docs/training.md for the guide.
"""

from seqlab.summary import parameter_table
from seqlab.training.callbacks import (CSVLogger, Callback, EarlyStopping, History, JSONLogger,
                                       LearningRateScheduler, ModelCheckpoint, NonFiniteLossError,
                                       ReduceLROnPlateau, TensorBoard, TerminateOnNaN)
from seqlab.training.engine import Model
from seqlab.training.losses import (BinaryCrossentropy, CategoricalCrossentropy, Loss, MeanAbsoluteError,
                                    MeanSquaredError, SparseCategoricalCrossentropy)
from seqlab.training.metrics import (BinaryAccuracy, BitsPerCharacter, CategoricalAccuracy, Metric, Perplexity,
                                     SparseCategoricalAccuracy)
from seqlab.training.optimizers import SGD, Adagrad, Adam, Adamax, AdamW, Nadam, Optimizer, RMSprop
from seqlab.training.schedules import CosineDecay, ExponentialDecay, InverseSquareRootDecay, LearningRateSchedule
from seqlab.training.tbptt import batchify

__all__ = [
    "SGD", "Adagrad", "Adam", "AdamW", "Adamax", "BinaryAccuracy", "BinaryCrossentropy", "BitsPerCharacter",
    "CSVLogger", "Callback", "CategoricalAccuracy", "CategoricalCrossentropy", "CosineDecay", "EarlyStopping",
    "ExponentialDecay", "History", "InverseSquareRootDecay", "JSONLogger", "LearningRateSchedule", "LearningRateScheduler", "Loss",
    "MeanAbsoluteError", "MeanSquaredError", "Metric", "Model", "ModelCheckpoint", "Nadam", "NonFiniteLossError",
    "Optimizer", "Perplexity", "RMSprop", "ReduceLROnPlateau", "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy", "TensorBoard", "TerminateOnNaN", "batchify", "parameter_table",
]
