"""Labeled texts: the `TextLabelSplit` every classification loader returns,
and `load_text_label` for any CSV/TSV file with a text and a label column.
"""
from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seqlab.data.datasets.text_corpus import STRICT, read_text_file

Column = str | int
LabelSpec = Mapping[str, int] | Sequence[str] | None
MAX_LINES_SHOWN = 10


@dataclass
class TextLabelSplit:
    """One split of a text classification dataset.

    texts: the documents; labels: one integer per text (e.g. 1 = positive).
    label_names: integer label -> the value it had in the file.
    ids: where each text came from (file name or id column), when known.
    skipped_empty: rows left out because their text was empty.
    replaced: undecodable byte runs replaced by U+FFFD (`errors="replace"`).

    Example:
        split = load_text_label("reviews.csv", text_column="review", label_column="sentiment")
        split.texts[0], split.labels[0]     # ('Great film', 1)
        print(split.summary())              # reviews: 1,000 texts, labels {0: 480, 1: 520}, ...
    """

    texts: list[str]
    labels: list[int]
    name: str = ""
    label_names: dict[int, str] = field(default_factory=dict)
    ids: list[str] | None = None
    skipped_empty: int = 0
    replaced: int = 0

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{self.name or 'split'}: {len(self.texts)} texts but "
                             f"{len(self.labels)} labels; they must pair up one to one")
        if self.ids is not None and len(self.ids) != len(self.texts):
            raise ValueError(f"{self.name or 'split'}: {len(self.ids)} ids for {len(self.texts)} texts")

    def __len__(self) -> int:
        return len(self.texts)

    def label_counts(self) -> dict[int, int]:
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, indices: Sequence[int], name: str) -> TextLabelSplit:
        """The examples at `indices`, in that order, as a new split."""
        ids = [self.ids[i] for i in indices] if self.ids is not None else None
        return TextLabelSplit([self.texts[i] for i in indices], [self.labels[i] for i in indices],
                              name, dict(self.label_names), ids)

    def summary(self) -> str:
        mean_chars = sum(map(len, self.texts)) / len(self.texts) if self.texts else 0.0
        summary = (f"{self.name or 'split'}: {len(self):,} texts, labels {self.label_counts()}, "
                   f"mean {mean_chars:,.0f} characters")
        if self.skipped_empty:
            summary += f", {self.skipped_empty:,} empty texts skipped"
        if self.replaced:
            summary += f", {self.replaced:,} undecodable byte runs replaced"
        return summary


class MalformedDataError(ValueError):
    """Rows of a data file that do not have the expected shape or values."""


@dataclass
class Table:
    """Rows of a delimited file with their line numbers (1-based, header included)."""

    header: list[str] | None
    rows: list[list[str]]
    lines: list[int]
    replaced: int


def load_text_label(
    path: str | os.PathLike[str],
    text_column: Column = "text",
    label_column: Column = "label",
    delimiter: str | None = None,
    labels: LabelSpec = None,
    header: bool = True,
    quoting: bool = True,
    id_column: Column | None = None,
    encoding: str = "utf-8",
    errors: str = STRICT,
    name: str | None = None,
) -> TextLabelSplit:
    """Read a CSV/TSV file with a text column and a label column.

    delimiter: default from the file name, `,` for .csv and tab for .tsv/.txt.
    labels: the expected label values, as `{"neg": 0, "pos": 1}` or a list
        (`["neg", "pos"]` -> 0, 1); any other value is an error naming its
        lines. Default: integer values as they are, otherwise the sorted
        distinct values numbered from 0.
    quoting: False reads quote characters as text (needed when texts contain
        unbalanced quotes, as NSMC does).
    Rows with an empty text are skipped and counted.
    """
    path = Path(path)
    table = read_table(path, _delimiter_for(path, delimiter), quoting, header, encoding, errors)
    width = len(table.rows[0])
    text_index, label_index = (_column_index(c, table.header, width, path)
                               for c in (text_column, label_column))
    id_index = _column_index(id_column, table.header, width, path) if id_column is not None else None
    keep = [i for i, row in enumerate(table.rows) if row[text_index].strip()]
    values = [table.rows[i][label_index].strip() for i in keep]
    mapping = _label_mapping(values, labels)
    unexpected = [table.lines[i] for i, value in zip(keep, values) if value not in mapping]
    if unexpected:
        bad = sorted({v for v in values if v not in mapping})
        _raise_for_lines(path, f"rows with a label other than {sorted(mapping)} (found {bad[:10]})",
                         unexpected, "fix those rows, or pass labels=... listing every label value")
    return TextLabelSplit(
        texts=[table.rows[i][text_index] for i in keep],
        labels=[mapping[v] for v in values],
        name=name or path.stem,
        label_names={number: value for value, number in mapping.items()},
        ids=[table.rows[i][id_index] for i in keep] if id_index is not None else None,
        skipped_empty=len(table.rows) - len(keep),
        replaced=table.replaced,
    )


def read_table(path: Path, delimiter: str, quoting: bool = True, header: bool = True,
               encoding: str = "utf-8", errors: str = STRICT,
               field_counts: Collection[int] | None = None) -> Table:
    """Parse a delimited file, skipping blank lines; every row must have
    `field_counts` fields (default: as many as the header) or the error lists
    the offending lines."""
    decoded = read_text_file(path, encoding, errors)
    reader = csv.reader(io.StringIO(decoded.text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE, strict=quoting)
    rows, lines, first_line = [], [], 1
    try:
        for row in reader:
            if row:  # blank lines carry no data
                rows.append(row)
                lines.append(first_line)  # a quoted field may span lines: report where it starts
            first_line = reader.line_num + 1
    except csv.Error as error:
        raise MalformedDataError(f"{path}: line {reader.line_num}: {error}; fix the row, or, when quote "
                                 "characters are part of the text, read them as text: --no-quoting on the "
                                 "command line, quoting=False in Python") from None
    table_header = None
    if header and rows:
        table_header, _ = rows.pop(0), lines.pop(0)
    if not rows:
        raise ValueError(f"{path} has no data rows; expected {'a header and ' if header else ''}"
                         "at least one row")
    expected = field_counts or ({len(table_header)} if table_header else {len(rows[0])})
    malformed = [line for row, line in zip(rows, lines) if len(row) not in expected]
    if malformed:
        _raise_for_lines(path, f"rows without {' or '.join(map(str, sorted(expected)))} fields",
                         malformed, f"fix them (is the delimiter {delimiter!r} right?)")
    return Table(table_header, rows, lines, decoded.replaced)


def _raise_for_lines(path: Path, problem: str, lines: list[int], advice: str) -> None:
    shown = ", ".join(map(str, lines[:MAX_LINES_SHOWN])) + (", ..." if len(lines) > MAX_LINES_SHOWN else "")
    raise MalformedDataError(f"{path}: {len(lines)} {problem}, at line {shown}; {advice}")


def _delimiter_for(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    by_suffix = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
    if path.suffix.lower() not in by_suffix:
        raise ValueError(f"cannot tell the delimiter of {path.name} from its suffix; pass "
                         "delimiter=',' or delimiter='\\t'")
    return by_suffix[path.suffix.lower()]


def _column_index(column: Column, header: list[str] | None, width: int, path: Path) -> int:
    if isinstance(column, int):
        if not 0 <= column < width:
            raise ValueError(f"column {column} does not exist: {path} has {width} columns (0..{width - 1})")
        return column
    if header is None:
        raise ValueError(f"column {column!r} is a name but {path} is read without a header; "
                         "pass column positions (0, 1, ...) or header=True")
    if column not in header:
        raise ValueError(f"{path} has no column {column!r}; its columns are {header}. Pass "
                         "text_column=... and label_column=... with the right names")
    return header.index(column)


def _label_mapping(values: list[str], labels: LabelSpec) -> dict[str, int]:
    if isinstance(labels, Mapping):
        return {str(value): number for value, number in labels.items()}
    if labels is not None:
        return {str(value): number for number, value in enumerate(labels)}
    distinct = sorted(set(values))
    if all(_is_integer(v) for v in distinct):
        return {v: int(v) for v in distinct}
    return {value: number for number, value in enumerate(distinct)}


def _is_integer(value: str) -> bool:
    return value.lstrip("-").isdigit()
