"""Scores of predicted tags against gold ones: token accuracy, entity F1 (seqeval), a confusion matrix.

    accuracy            correct tokens / tokens (padding never counts)
    entity P / R / F1   seqeval, strict IOB2: an entity counts when its type and both ends match;
                        micro over all entities (seqeval's default) and macro over the types
                        (KLUE's "entity-level macro F1"), and per type
    char macro F1       the macro F1 of the per-token tags, O left out (KLUE's "character-level
                        macro F1" when the tokens are characters), by scikit-learn

The entity scores exist for BIO tag sets only. `score_tags` checks that each
predicted sentence has its gold sentence's length.

    >>> scores = score_tags([["B-PS", "I-PS", "O"]], [["B-PS", "O", "O"]])
    >>> scores.accuracy, scores.entities["f1"]
    (0.6666666666666666, 0.0)
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from seqlab.data.datasets.tagged import is_bio_tagset

__all__ = ["TagScores", "score_tags"]


@dataclass
class TagScores:
    sentences: int
    tokens: int
    accuracy: float
    confusion: dict[str, dict[str, int]]     # gold tag -> predicted tag -> count
    entities: dict[str, Any] | None = None   # precision, recall, f1, macro_f1, per_type, char_macro_f1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def top_confusions(self, count: int = 10) -> list[tuple[str, str, int]]:
        """The most frequent (gold, predicted, count) mistakes."""
        mistakes = [(gold, predicted, n) for gold, row in self.confusion.items()
                    for predicted, n in row.items() if gold != predicted]
        return sorted(mistakes, key=lambda m: (-m[2], m[0], m[1]))[:count]

    def report(self) -> str:
        lines = [f"token accuracy {self.accuracy:.2%} on {self.tokens:,} tokens of {self.sentences:,} sentences"]
        if self.entities is not None:
            e = self.entities
            lines.append(f"entities (seqeval, strict IOB2): precision {e['precision']:.2%}, recall {e['recall']:.2%}, "
                         f"F1 {e['f1']:.2%} (micro), {e['macro_f1']:.2%} (macro over types); "
                         f"character-level macro F1 {e['char_macro_f1']:.2%}")
            for kind, row in sorted(e["per_type"].items()):
                lines.append(f"  {kind:<6} P {row['precision']:.2%}  R {row['recall']:.2%}  F1 {row['f1']:.2%}  "
                             f"({row['support']:,} entities)")
        mistakes = self.top_confusions(5)
        if mistakes:
            lines.append("most frequent mistakes (gold -> predicted): " +
                         ", ".join(f"{gold} -> {predicted} {n:,}" for gold, predicted, n in mistakes))
        return "\n".join(lines)


def score_tags(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> TagScores:
    """Compare tag sequences sentence by sentence (see the module docstring)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted ones.")
    confusion: dict[str, Counter] = {}
    correct = tokens = 0
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {index + 1}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted.")
        for g, p in zip(gold_tags, predicted_tags):
            confusion.setdefault(g, Counter())[p] += 1
            correct += g == p
        tokens += len(gold_tags)
    if tokens == 0:
        raise ValueError("there are no tokens to score.")
    scores = TagScores(len(gold), tokens, correct / tokens,
                       {g: dict(sorted(row.items())) for g, row in sorted(confusion.items())})
    if is_bio_tagset(confusion):
        scores.entities = _entity_scores(gold, predicted)
    return scores


def _entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    try:
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2
        from sklearn.metrics import f1_score
    except ImportError:
        raise ImportError("entity scores need seqeval: pip install 'seqlab[tag]' (or pip install seqeval)") from None
    gold, predicted = [list(s) for s in gold], [list(s) for s in predicted]
    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_type = {kind: {"precision": float(row["precision"]), "recall": float(row["recall"]),
                       "f1": float(row["f1-score"]), "support": int(row["support"])}
                for kind, row in report.items() if not kind.endswith(" avg")}
    micro, macro = report.get("micro avg", {}), report.get("macro avg", {})
    flat_gold = [tag for sentence in gold for tag in sentence]
    flat_predicted = [tag for sentence in predicted for tag in sentence]
    labels = sorted({*flat_gold, *flat_predicted} - {"O"})
    char_f1 = float(f1_score(flat_gold, flat_predicted, labels=labels, average="macro", zero_division=0)) \
        if labels else 0.0
    return {"precision": float(micro.get("precision", 0.0)), "recall": float(micro.get("recall", 0.0)),
            "f1": float(micro.get("f1-score", 0.0)), "macro_f1": float(macro.get("f1-score", 0.0)),
            "per_type": per_type, "char_macro_f1": char_f1}
