"""`CRF`: a linear-chain conditional random field over per-step tag scores.

Emissions `E (batch, T, K)` score tag k at step t (a `Dense(K)` on an encoder, say). A tag
path `y_1..y_L` over a row's `L` real steps scores

    s(y) = start[y_1] + Σ_{t=1..L} E[t, y_t] + Σ_{t=2..L} A[y_{t-1}, y_t] + end[y_L]

with `A = transitions (K, K)` (`A[i, j]`: moving from tag i to tag j), `start (K,)` and
`end (K,)`, and `p(y | E) = exp s(y) / Z`. The forward recursion gives `log Z` in `O(T K²)`:

    α_1 = start + E_1,   α_t[j] = logsumexp_i(α_{t-1}[i] + A[i, j]) + E_t[j],   log Z = logsumexp_j(α_L[j] + end[j])

and Viterbi is the same recursion with max for logsumexp, then a walk back along the argmaxes.

A mask `(batch, T)` is True at real steps, which form a prefix of each row (right padding).
A row of length 0 has score 0, `log Z = 0`, and decodes to zeros, as every padded position
does. `allowed_transitions (K, K)`, `allowed_start (K,)` and `allowed_end (K,)` (bool) give the
moves they forbid a score of -inf, held in buffers added to the learned weights, so training
cannot make them possible; `bio_constraints(tag_names)` builds them for IOB2 tags.

    >>> crf = CRF(5)
    >>> paths, scores = crf.decode(torch.randn(2, 7, 5))           # (2, 7) int64, (2,)
    >>> loss = crf.negative_log_likelihood(torch.randn(2, 7, 5), paths).mean()
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from seqlab import initializers
from seqlab.layers.attention import check_mask
from seqlab.layers.base import Layer, Shape

__all__ = ["CRF", "bio_constraints", "viterbi_decode"]

_WEIGHTS = ("transitions", "start_transitions", "end_transitions")
_OPTIONS = ("allowed_transitions", "allowed_start", "allowed_end")   # the allowed moves of each weight


class CRF(Layer):
    """Linear-chain CRF over `num_tags` tags (the math: the module docstring).

    Inputs: `emissions (N, L, K)` float, `tags (N, L)` int64 (any value at padded steps),
    `mask (N, L)` bool (default: the emissions' `_keras_mask`, else every step real).
    Weights: `transitions (K, K)`, `start_transitions (K,)`, `end_transitions (K,)`, initialised
    uniform(-0.1, 0.1) as in pytorch-crf. Calling the layer returns the Viterbi paths `(N, L)`;
    `log_likelihood`, `negative_log_likelihood`, `log_partition` return `(N,)`.
    """

    supports_masking = True

    def __init__(self, num_tags: int, allowed_transitions: Any = None, allowed_start: Any = None,
                 allowed_end: Any = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_tags, bool) or not float(num_tags).is_integer() or int(num_tags) <= 0:
            raise ValueError(f"{self.name}: num_tags must be a positive whole number, got {num_tags!r}.")
        self.num_tags = int(num_tags)
        self.allowed = {name: _as_allowed(value, self._shape(name), option, self.name) for name, value, option
                        in zip(_WEIGHTS, (allowed_transitions, allowed_start, allowed_end), _OPTIONS)}

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) != 3 or input_shape[-1] != self.num_tags:
            raise ValueError(
                f"{self.name} needs emissions of shape (batch, time, num_tags={self.num_tags}), got "
                f"{tuple(input_shape)}. Put a Dense({self.num_tags}) before the CRF."
            )
        uniform = initializers.RandomUniform(-0.1, 0.1)
        for name in _WEIGHTS:
            weight = self.add_weight(name, self._shape(name), uniform)
            penalty = torch.zeros_like(weight.detach())
            if self.allowed[name] is not None:
                penalty.masked_fill_(~self.allowed[name].to(weight.device), float("-inf"))
            self.register_buffer(f"{name}_penalty", penalty, persistent=False)  # rebuilt from the config
        self.built = True

    def _shape(self, name: str) -> tuple[int, ...]:
        return (self.num_tags,) * (2 if name == "transitions" else 1)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The transition, start and end scores in use: the learned weights plus -inf where forbidden."""
        return tuple(getattr(self, name) + getattr(self, f"{name}_penalty") for name in _WEIGHTS)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`log Z (N,)`: the log-sum-exp of the scores of every tag path."""
        emissions, mask = self._inputs(emissions, mask)
        return _log_partition(emissions, mask, *self.scores())

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
        """`log p(tags | emissions) = s(tags) - log Z`, `(N,)` (-inf for a forbidden path)."""
        emissions, mask = self._inputs(emissions, mask)
        tags = _checked_tags(tags, mask, self.num_tags, self.name)
        scores = self.scores()
        return _path_score(emissions, tags, mask, *scores) - _log_partition(emissions, mask, *scores)

    def negative_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor,
                                mask: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss per row, `(N,)`: `-log_likelihood`."""
        return -self.log_likelihood(emissions, tags, mask)

    def decode(self, emissions: torch.Tensor,
               mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The best path of each row `(N, L)` int64 (0 at padded steps) and its score `(N,)`."""
        emissions, mask = self._inputs(emissions, mask)
        return _viterbi(emissions, mask, *self.scores())

    def forward(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(emissions, mask)[0]

    def _inputs(self, emissions: torch.Tensor, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _checked_mask(emissions, mask, self.num_tags, self.name)
        self.build_like(emissions)
        return emissions, mask

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[:-1])

    def get_config(self) -> dict[str, Any]:
        allowed = [None if mask is None else mask.tolist() for mask in self.allowed.values()]
        return {**super().get_config(), "num_tags": self.num_tags, **dict(zip(_OPTIONS, allowed))}


def viterbi_decode(emissions: torch.Tensor, mask: torch.Tensor | None, transitions: torch.Tensor,
                   start_transitions: torch.Tensor,
                   end_transitions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`CRF.decode` as a function: the best paths `(N, L)` and scores `(N,)` under the given scores.

    With zero transitions and log-probabilities as emissions it is the constrained arg-max of a
    softmax tagger: put -inf in `transitions (K, K)`, `start_transitions (K,)`, `end_transitions (K,)`
    where a move is forbidden (e.g. `torch.where(allowed, 0.0, -inf)` from `bio_constraints`).
    """
    num_tags = emissions.shape[-1] if isinstance(emissions, torch.Tensor) and emissions.dim() else -1
    mask = _checked_mask(emissions, mask, num_tags, "viterbi_decode")
    for what, scores in zip(_WEIGHTS, (transitions, start_transitions, end_transitions)):
        if tuple(scores.shape) != (num_tags,) * (2 if what == "transitions" else 1):
            raise ValueError(f"viterbi_decode: {what} must be {'(K, K)' if what == 'transitions' else '(K,)'} "
                             f"for the emissions' K = {num_tags} tags, got shape {tuple(scores.shape)}.")
    return _viterbi(emissions, mask, transitions, start_transitions, end_transitions)


def bio_constraints(tag_names: Sequence[str],
                    excluded: Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The allowed moves of IOB2 tags ("O", "B-TYPE", "I-TYPE"): `(K, K)`, `(K,)`, `(K,)` bool.

    "I-X" may follow only "B-X" or "I-X" and may not start a sequence; any tag may end one.
    The tags at `excluded` indices (a padding tag, say) are allowed nowhere.

        >>> transitions, start, end = bio_constraints(["<pad>", "O", "B-PS", "I-PS"], excluded=[0])
        >>> transitions[1, 3].item(), transitions[2, 3].item(), start[3].item()
        (False, True, False)
    """
    if not tag_names:
        raise ValueError("bio_constraints needs at least one tag name, e.g. ['O', 'B-PER', 'I-PER'].")
    excluded = {int(index) for index in excluded}
    if any(not 0 <= index < len(tag_names) for index in excluded):
        raise ValueError(f"bio_constraints: excluded indices {sorted(excluded)} must lie in [0, {len(tag_names)}).")
    tags = [None if index in excluded else _bio_tag(name, index) for index, name in enumerate(tag_names)]
    transitions = torch.tensor([[source is not None and target is not None
                                 and (target[0] != "I" or (source[0] != "O" and source[1] == target[1]))
                                 for target in tags] for source in tags], dtype=torch.bool)
    usable = torch.tensor([tag is not None for tag in tags], dtype=torch.bool)
    inside = torch.tensor([tag is not None and tag[0] == "I" for tag in tags], dtype=torch.bool)
    return transitions, usable & ~inside, usable


# ---------------------------------------------------------------------- the recursions
def _log_partition(emissions, mask, transitions, start, end) -> torch.Tensor:
    batch, time, _ = emissions.shape
    if time == 0:
        return emissions.new_zeros(batch)
    alpha = start + emissions[:, 0]                                                  # (N, K)
    for t in range(1, time):
        step = _logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]  # (N, i, j) -> (N, j)
        alpha = torch.where(mask[:, t, None], step, alpha)
    log_z = _logsumexp(alpha + end, dim=1)
    return torch.where(mask[:, 0], log_z, torch.zeros_like(log_z))


def _path_score(emissions, tags, mask, transitions, start, end) -> torch.Tensor:
    if emissions.shape[1] == 0:
        return emissions.new_zeros(emissions.shape[0])
    zero = emissions.new_zeros(())
    emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)                       # (N, L)
    moved = transitions[tags[:, :-1], tags[:, 1:]]                                    # (N, L-1)
    lengths = mask.sum(dim=1)
    last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    edges = torch.where(lengths > 0, start[tags[:, 0]] + end[last], zero)
    return torch.where(mask, emitted, zero).sum(1) + torch.where(mask[:, 1:], moved, zero).sum(1) + edges


def _viterbi(emissions, mask, transitions, start, end) -> tuple[torch.Tensor, torch.Tensor]:
    batch, time, num_tags = emissions.shape
    if time == 0:
        return emissions.new_zeros((batch, 0), dtype=torch.long), emissions.new_zeros(batch)
    stay = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
    best, pointers = start + emissions[:, 0], []
    for t in range(1, time):
        step, pointer = (best.unsqueeze(2) + transitions).max(dim=1)   # best predecessor i of each tag j
        real = mask[:, t, None]
        best = torch.where(real, step + emissions[:, t], best)
        pointers.append(torch.where(real, pointer, stay))  # a padded step keeps its tag: the walk back passes it
    scores, tag = (best + end).max(dim=1)
    path = [tag]
    for pointer in reversed(pointers):
        tag = pointer.gather(1, tag.unsqueeze(1)).squeeze(1)
        path.append(tag)
    paths = torch.stack(path[::-1], dim=1).masked_fill(~mask, 0)
    return paths, torch.where(mask[:, 0], scores, torch.zeros_like(scores))


def _logsumexp(scores: torch.Tensor, dim: int) -> torch.Tensor:
    # An impossible state (every term -inf) stays -inf with a zero gradient, not torch's NaN.
    impossible = torch.isneginf(scores).all(dim, keepdim=True)
    result = torch.logsumexp(scores.masked_fill(impossible, 0.0), dim)
    return result.masked_fill(impossible.squeeze(dim), float("-inf"))


# ---------------------------------------------------------------------- checks
def _checked_mask(emissions: Any, mask: Any, num_tags: int, who: str) -> torch.Tensor:
    if not isinstance(emissions, torch.Tensor) or emissions.dim() != 3 or not emissions.is_floating_point() \
            or emissions.shape[-1] != num_tags:
        shape = tuple(emissions.shape) if isinstance(emissions, torch.Tensor) else type(emissions).__name__
        raise ValueError(f"{who}: emissions must be a float tensor (batch, time, num_tags={num_tags}), got {shape}.")
    mask = check_mask(getattr(emissions, "_keras_mask", None) if mask is None else mask, emissions, who, "mask")
    if mask is None:
        return torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)
    holes = mask[:, 1:] & ~mask[:, :-1]
    if bool(holes.any()):
        row = int(holes.any(dim=1).nonzero()[0])
        raise ValueError(f"{who}: the real steps of each row must come first (right padding), but row {row} "
                         f"of the mask is {mask[row].int().tolist()}. Right-pad the sequences.")
    return mask


def _checked_tags(tags: Any, mask: torch.Tensor, num_tags: int, who: str) -> torch.Tensor:
    tags = torch.as_tensor(tags, device=mask.device)
    if tuple(tags.shape) != tuple(mask.shape) or tags.is_floating_point() or tags.dtype == torch.bool:
        raise ValueError(f"{who}: tags must be integers of shape (batch, time) = {tuple(mask.shape)}, "
                         f"got {tags.dtype} {tuple(tags.shape)}.")
    tags = tags.long().masked_fill(~mask, 0)   # padded steps may hold anything
    if tags.numel() and not 0 <= int(tags.min()) <= int(tags.max()) < num_tags:
        raise ValueError(f"{who}: tags at real steps must lie in [0, {num_tags}), got values from "
                         f"{int(tags.min())} to {int(tags.max())}.")
    return tags


def _as_allowed(value: Any, shape: tuple[int, ...], option: str, who: str) -> torch.Tensor | None:
    if value is None:
        return None
    allowed = torch.as_tensor(value).detach().cpu()
    if allowed.dtype != torch.bool and not bool(((allowed == 0) | (allowed == 1)).all()):
        raise ValueError(f"{who}: {option} must hold booleans (True = allowed), got dtype {allowed.dtype}.")
    if tuple(allowed.shape) != shape:
        raise ValueError(f"{who}: {option} must have shape {shape} (num_tags = {shape[0]}), "
                         f"got {tuple(allowed.shape)}.")
    return allowed != 0


def _bio_tag(name: str, index: int) -> tuple[str, str]:
    prefix, dash, kind = name.partition("-")
    if name == "O" or (prefix in ("B", "I") and dash and kind):
        return prefix, kind
    raise ValueError(f"bio_constraints: tag {name!r} at index {index} is not 'O', 'B-TYPE' or 'I-TYPE'. "
                     "Pass the index of a padding or special tag in excluded=.")
