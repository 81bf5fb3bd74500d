"""Search for the output sequence of an encoder–decoder: greedy decoding and beam search.

A decoder that emits one token at a time defines

    log P(y | x) = Σ_t log p(y_t | y_<t, x)

Greedy decoding takes `y_t = argmax p(· | y_<t, x)` at every step. Beam search
keeps the `beam_width` best prefixes by their summed log-probability, extends
each by every token, and keeps the best `beam_width` of those; a prefix that
emits `<eos>` is finished. Finished hypotheses are ranked by the score with
GNMT's length penalty (Wu et al. 2016),

    score(Y) = log P(Y | x) / lp(Y),      lp(Y) = ((5 + |Y|) / 6) ** α

(`length_penalty=α >= 0`; α = 0 ranks by log P, which favours short
outputs; |Y| counts the emitted tokens, `<eos>` included). Search stops when
`beam_width` hypotheses have finished and no prefix still alive can overtake
them (a prefix's best possible score is its log P / lp(max_length): log P
only falls as it grows), or after `max_length` tokens (the prefixes alive
then count as unfinished hypotheses). With `beam_width=1` and α = 0 beam
search is greedy decoding. `beam_search_batch` searches many sources at once,
one decoder call per step for all their beams.

The decoder is anything with the two methods of `StepDecoder`: the encoder
runs once (the caller makes the first state), then every step feeds the
previous tokens `(batch,)` and the carried state.

    >>> state = model.start(source_ids)                            # encoder, once
    >>> best = beam_search(model, state, sos=1, eos=2, beam_width=5)[0]
    >>> best.tokens, best.attention.shape                          # ids without <sos>/<eos>, (steps, source)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

__all__ = ["Hypothesis", "StepDecoder", "beam_search", "beam_search_batch", "greedy_decode", "length_penalty_factor"]


class StepDecoder(Protocol):
    """One decoder step on `batch` prefixes; the state is whatever the decoder carries."""

    def decode_step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """`tokens (batch,)` → `(log_probs (batch, vocabulary), new state, attention (batch, source) or None)`."""
        ...

    def reorder_state(self, state: Any, indices: torch.Tensor) -> Any:
        """The state of the prefixes `indices (k,)` (rows picked, repeated or dropped)."""
        ...


@dataclass
class Hypothesis:
    """One output sequence: ids (no `<sos>`/`<eos>`), log P, ranking score, attention rows.

    `attention` is `(steps, source_length)` (one row per emitted token, `<eos>`
    included when emitted), or None when the decoder has no attention.
    """

    tokens: list[int]
    log_probability: float
    score: float
    finished: bool
    attention: torch.Tensor | None = None


def length_penalty_factor(length: int, alpha: float) -> float:
    """GNMT's `lp = ((5 + length) / 6) ** alpha` (1 for alpha = 0)."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def greedy_decode(decoder: StepDecoder, state: Any, batch_size: int, sos: int, eos: int,
                  max_length: int) -> list[Hypothesis]:
    """The argmax token at every step for a batch of `batch_size` sources; one `Hypothesis` each."""
    _check_max_length(max_length)
    device = _device_of(state)
    tokens = torch.full((batch_size,), sos, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    chosen, log_probs, rows = [], [], []
    for _ in range(max_length):
        step_log_probs, state, attention = decoder.decode_step(tokens, state)
        best, tokens = step_log_probs.max(dim=-1)
        chosen.append(tokens)
        log_probs.append(best)
        rows.append(attention)
        done |= tokens == eos
        if bool(done.all()):
            break
    ids, totals = torch.stack(chosen, 1).tolist(), torch.stack(log_probs, 1)
    hypotheses = []
    for row, sequence in enumerate(ids):
        finished = eos in sequence
        length = sequence.index(eos) + 1 if finished else len(sequence)
        attention = None if rows[0] is None else torch.stack([r[row] for r in rows[:length]])
        total = float(totals[row, :length].sum())
        hypotheses.append(Hypothesis(sequence[:length - 1] if finished else sequence[:length], total, total,
                                     finished, attention))
    return hypotheses


@torch.no_grad()
def beam_search(decoder: StepDecoder, state: Any, sos: int, eos: int, beam_width: int = 5,
                max_length: int = 50, length_penalty: float = 0.0) -> list[Hypothesis]:
    """Beam search for ONE source (its state has batch 1); hypotheses best first (see the module docstring)."""
    return beam_search_batch(decoder, state, 1, sos, eos, beam_width, max_length, length_penalty)[0]


@torch.no_grad()
def beam_search_batch(decoder: StepDecoder, state: Any, batch_size: int, sos: int, eos: int, beam_width: int = 5,
                      max_length: int = 50, length_penalty: float = 0.0) -> list[list[Hypothesis]]:
    """Beam search for `batch_size` sources at once (the state's batch): each source's hypotheses, best first.

    Every step runs the decoder once on the alive prefixes of all sources
    (their rows stacked source by source, at most `beam_width` each); each
    source's beam is searched as `beam_search` searches it alone, and a
    source whose search has stopped gives no more rows.
    """
    _check_max_length(max_length)
    if int(beam_width) < 1:
        raise ValueError(f"beam_width must be at least 1 (1 is greedy decoding), got {beam_width}.")
    if length_penalty < 0:
        raise ValueError(f"length_penalty must be >= 0 (0: rank by log-probability; about 0.6 to prefer "
                         f"longer outputs), got {length_penalty}.")
    device = _device_of(state)
    alive = [[_Prefix([], 0.0, [])] for _ in range(batch_size)]
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    tokens = torch.full((batch_size,), sos, dtype=torch.long, device=device)
    for step in range(1, max_length + 1):
        log_probs, state, attention = decoder.decode_step(tokens, state)
        parents: list[int] = []
        first_row = 0
        for source, prefixes in enumerate(alive):
            rows = slice(first_row, first_row + len(prefixes))
            first_row = rows.stop
            if not prefixes:
                continue
            survivors, chosen = _extend(prefixes, log_probs[rows], None if attention is None else attention[rows],
                                        finished[source], eos, step, beam_width, length_penalty)
            if not survivors or _cannot_be_overtaken(finished[source], survivors, beam_width, max_length,
                                                     length_penalty):
                survivors, chosen = [], []
            alive[source] = survivors
            parents += [rows.start + row for row in chosen]
        if not parents:
            break
        state = decoder.reorder_state(state, torch.tensor(parents, dtype=torch.long, device=device))
        tokens = torch.tensor([p.tokens[-1] for prefixes in alive for p in prefixes], dtype=torch.long,
                              device=device)
    # Prefixes still alive here reached max_length: they count as unfinished hypotheses.
    for source, prefixes in enumerate(alive):
        finished[source] += [_finish(p.tokens, p.log_probability, p.attention, False, max_length, length_penalty)
                             for p in prefixes]
    return [sorted(hypotheses, key=lambda h: h.score, reverse=True) for hypotheses in finished]


def _extend(alive: list["_Prefix"], log_probs: torch.Tensor, attention: torch.Tensor | None,
            finished: list[Hypothesis], eos: int, step: int, beam_width: int,
            alpha: float) -> tuple[list["_Prefix"], list[int]]:
    """One source's step: the best `2 * beam_width` continuations of its prefixes `log_probs (k, vocabulary)`;
    those ending in `<eos>` join `finished`, the best `beam_width` others survive. Returns the survivors and
    the row of each one's parent."""
    totals = torch.tensor([p.log_probability for p in alive], device=log_probs.device)[:, None] + log_probs
    vocabulary = log_probs.shape[-1]
    candidates = totals.flatten().topk(min(2 * beam_width, totals.numel()))
    survivors: list[_Prefix] = []
    parents: list[int] = []
    for total, flat in zip(candidates.values.tolist(), candidates.indices.tolist()):
        if total == -math.inf:  # impossible continuations never survive
            break
        parent, token = divmod(flat, vocabulary)
        rows = alive[parent].attention + ([] if attention is None else [attention[parent]])
        if token == eos:
            finished.append(_finish(alive[parent].tokens, total, rows, True, step, alpha))
        else:
            survivors.append(_Prefix(alive[parent].tokens + [token], total, rows))
            parents.append(parent)
        if len(survivors) == beam_width:
            break
    return survivors, parents


@dataclass
class _Prefix:
    tokens: list[int]
    log_probability: float
    attention: list[torch.Tensor]


def _cannot_be_overtaken(finished: list[Hypothesis], alive: list[_Prefix], beam_width: int, max_length: int,
                         alpha: float) -> bool:
    if len(finished) < beam_width:
        return False
    kept = sorted((h.score for h in finished), reverse=True)[beam_width - 1]
    best_possible = max(p.log_probability for p in alive) / length_penalty_factor(max_length, alpha)
    return kept >= best_possible


def _finish(tokens: list[int], log_probability: float, rows: list[torch.Tensor], finished: bool,
            length: int, alpha: float) -> Hypothesis:
    attention = torch.stack(rows) if rows else None
    return Hypothesis(list(tokens), log_probability, log_probability / length_penalty_factor(length, alpha),
                      finished, attention)


def _check_max_length(max_length: int) -> None:
    if int(max_length) < 1:
        raise ValueError(f"max_length must be at least 1 output token, got {max_length}.")


def _device_of(state: Any) -> torch.device:
    tensor = _first_tensor(state)
    return tensor.device if tensor is not None else torch.device("cpu")


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None
