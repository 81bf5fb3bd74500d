"""Where labeled texts come from: IMDb, NSMC or a CSV/TSV file, split into train, validation and test.

Every split is fixed by `DATA_SEED`, so test sets stay the same whatever the
training seed: IMDb as `load_imdb(split)` gives it, NSMC's official test set
and its training set less a seeded validation set of 10,000, a CSV cut
80 / 10 / 10. Labels must be two-valued; which one is positive must be clear
(0/1, a known pair such as neg/pos, or `labels=(NEG, POS)`).

    >>> train, validation, test = DataSource("csv:reviews.csv", labels=("bad", "good")).splits()
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np

from seqlab.commandline import setting
from seqlab.data.datasets import TextLabelSplit, load_imdb, load_nsmc, load_text_label

__all__ = ["DATA_SEED", "DataSource", "SentimentDataError"]

CSV_FIELDS = ("text_column", "label_column", "labels", "delimiter", "quoting", "decode_errors")
DATA_SEED = 1337  # fixes every dataset split, so test sets stay the same whatever the training seed
NSMC_VALIDATION = 10_000
CSV_HELD_OUT = 0.1  # a CSV is cut 80 / 10 / 10 into train / validation / test
# Label values whose meaning is clear (negative first); other words need --labels NEG,POS.
KNOWN_LABEL_PAIRS = {("neg", "pos"), ("negative", "positive"), ("bad", "good"), ("false", "true"), ("no", "yes")}


class SentimentDataError(ValueError):
    """Labeled data that cannot train or score a two-class sentiment model."""


@dataclass(frozen=True)
class DataSource:
    """Where labeled texts come from: "imdb", "nsmc" or "csv:PATH" (with its column names).

    Splits: IMDb as `load_imdb(split)` gives them; NSMC's official test set,
    its training set less a seeded validation set of 10,000; a CSV cut with a
    seeded shuffle into 80% train, 10% validation, 10% test. `labels`: the
    label values meaning negative then positive; needed unless the values
    are 0/1 or a pair such as neg/pos, negative/positive, bad/good.
    """

    dataset: str = setting("imdb", "imdb, nsmc or csv:PATH (a CSV/TSV with a text and a two-valued label column)")
    split: str = setting("official", "IMDb protocol: official test set, or the tutorial's book split",
                         choices=("official", "book"))
    text_column: str = setting("text", "CSV text column")
    label_column: str = setting("label", "CSV label column")
    labels: tuple[str, str] | None = setting(None, "CSV label values meaning negative and positive, in that order",
                                             command_line=False)
    delimiter: str | None = setting(None, "CSV delimiter", default_text="from the suffix, ',' for .csv, tab for "
                                                                         ".tsv/.txt")
    quoting: bool = setting(True, "CSV fields may be quoted (\"...\"); --no-quoting reads quote characters as text")
    decode_errors: str = setting("strict", "bytes of the CSV that are not UTF-8: strict (an error naming the byte) "
                                           "or replace (U+FFFD, counted)", choices=("strict", "replace"))

    def __post_init__(self) -> None:
        if self.dataset not in ("imdb", "nsmc") and not self.dataset.startswith("csv:"):
            raise ValueError(f"unknown dataset {self.dataset!r}; use imdb, nsmc or csv:PATH "
                             "(a CSV/TSV file with a text and a label column).")
        if self.labels is not None and len(self.labels) != 2:
            raise ValueError(f"labels must name two values, negative then positive; got {list(self.labels)}.")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        self.refuse_inapplicable(self.dataset, [name for name in defaults if name != "dataset"
                                                and getattr(self, name) != defaults[name]])

    @staticmethod
    def refuse_inapplicable(dataset: str, given: Iterable[str]) -> None:
        """Refuse options (field names) that mean nothing for `dataset` (--split but for IMDb; CSV options)."""
        given = list(given)
        if "split" in given and dataset != "imdb":
            raise ValueError(f"--split chooses between IMDb's protocols; {dataset} has one split of its own. "
                             "Drop --split.")
        if not dataset.startswith("csv:"):
            csv_only = [f"--{name.replace('_', '-')}" for name in CSV_FIELDS if name in given]
            if csv_only:
                verb = "describes" if len(csv_only) == 1 else "describe"
                raise ValueError(f"{', '.join(csv_only)} {verb} a CSV file; {dataset} is not one. Drop "
                                 f"{'it' if len(csv_only) == 1 else 'them'}, or give --dataset csv:PATH.")

    @property
    def csv_path(self) -> Path | None:
        return Path(self.dataset[4:]) if self.dataset.startswith("csv:") else None

    def splits(self) -> tuple[TextLabelSplit, TextLabelSplit, TextLabelSplit]:
        """(train, validation, test), each checked to hold two-class labels."""
        if self.dataset == "imdb":
            imdb = load_imdb(split=self.split, seed=DATA_SEED if self.split == "official" else None)
            parts = (imdb.train, imdb.validation, imdb.test)
        elif self.dataset == "nsmc":
            train, test = load_nsmc("train"), load_nsmc("test")
            order = np.random.default_rng(DATA_SEED).permutation(len(train)).tolist()
            cut = len(order) - NSMC_VALIDATION
            parts = (train.subset(order[:cut], "train"), train.subset(order[cut:], "validation"), test)
        else:
            table = self.read_csv()
            order = np.random.default_rng(DATA_SEED).permutation(len(table)).tolist()
            held_out = max(1, round(len(order) * CSV_HELD_OUT))
            if len(order) < 2 * held_out + 2:
                raise SentimentDataError(f"{self.csv_path} has {len(order)} labeled rows: too few to cut into "
                                         "train, validation and test; give it at least 4 rows (hundreds to learn).")
            cut = len(order) - 2 * held_out
            parts = (table.subset(order[:cut], "train"), table.subset(order[cut:cut + held_out], "validation"),
                     table.subset(order[cut + held_out:], "test"))
        for part in parts:
            _check_two_classes(part, self.describe(), training=part is parts[0])
        return parts

    def test_split(self) -> TextLabelSplit:
        """What `evaluate` scores: the test split, or every row of a CSV."""
        if self.csv_path is None:
            return self.splits()[2]
        table = self.read_csv()
        _check_two_classes(table, self.describe(), training=False)
        return table

    def read_csv(self) -> TextLabelSplit:
        table = load_text_label(self.csv_path, text_column=self.text_column, label_column=self.label_column,
                                delimiter=self.delimiter, labels=list(self.labels) if self.labels else None,
                                quoting=self.quoting, errors=self.decode_errors)
        _check_two_classes(table, self.describe(), training=False)
        names = sorted(table.label_names.values())
        if self.labels is None and len(names) == 2 and not all(n.lstrip("-").isdigit() for n in names) \
                and tuple(n.lower() for n in names) not in KNOWN_LABEL_PAIRS:
            raise SentimentDataError(
                f"{self.describe()}: the labels are {names}; which one is positive is not clear. Pass --labels "
                f"NEG,POS (labels=(neg, pos)), e.g. --labels {names[0]},{names[1]}: negative first.")
        return table

    def describe(self) -> str:
        if self.dataset == "imdb":
            return f"IMDb ({self.split} split)"
        if self.dataset == "nsmc":
            return "NSMC"
        return f"{self.csv_path} (text column {self.text_column!r}, label column {self.label_column!r})"

    def to_config(self) -> dict[str, Any]:
        """The fields, a CSV named by its absolute path with the SHA-256 of its bytes (`from_config` checks it)."""
        config = {**dataclasses.asdict(self), "labels": list(self.labels) if self.labels else None}
        if self.csv_path is not None:
            config.update(dataset=f"csv:{self.csv_path.resolve()}", sha256=self.checksum())
        return config

    def checksum(self) -> str | None:
        """The SHA-256 of a CSV file's bytes (None for the named datasets, which their loaders verify)."""
        if self.csv_path is None:
            return None
        try:
            return hashlib.sha256(self.csv_path.read_bytes()).hexdigest()
        except FileNotFoundError:
            raise FileNotFoundError(f"No such file: {self.csv_path} (from --dataset {self.dataset}).") from None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DataSource":
        """The source `to_config` described; a CSV whose bytes changed since is refused.

        A field missing (or None) where its default is not None takes the default:
        configs written before that field existed.
        """
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in config.items() if k in defaults and (v is not None or defaults[k] is None)}
        source = cls(**{**fields, "labels": tuple(config["labels"]) if config.get("labels") else None})
        if config.get("sha256") is not None and source.checksum() != config["sha256"]:
            raise SentimentDataError(f"{source.csv_path} has changed since the model was trained on it (its "
                                     "SHA-256 differs), so its test split is no longer the one held out. Restore "
                                     "the file; to score other data, give it with --dataset.")
        return source


def _check_two_classes(split: TextLabelSplit, source: str, training: bool) -> None:
    values = sorted(set(split.labels))
    if set(values) <= {0, 1} and (len(values) == 2 or not training):
        return
    names = [split.label_names.get(v, str(v)) for v in values]
    counts = {split.label_names.get(v, str(v)): n for v, n in split.label_counts().items()}
    if len(values) > 2:
        raise SentimentDataError(
            f"{source}: the label column has {len(values)} values {names} (counts {counts}), but sentiment "
            "classification needs exactly two, negative and positive. Remove or relabel the other rows, or "
            "pass --labels NEG,POS (labels=(neg, pos)) naming the two values; rows with any other value are "
            "then reported with their line numbers.")
    if len(values) == 2:
        raise SentimentDataError(
            f"{source}: the labels are {names}, not 0 and 1, so which one is positive is not clear. Pass "
            f"--labels {names[0]},{names[1]} (labels=({names[0]!r}, {names[1]!r})): negative first, then positive.")
    raise SentimentDataError(f"{source}: the training texts all have the label {names[0]!r}; training needs "
                             "examples of both negative and positive texts.")

