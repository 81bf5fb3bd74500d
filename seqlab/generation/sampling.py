"""Sampling from a language model: scale factor (temperature), top-k, top-p, greedy; incremental and batched.

From the logits `z (batch, vocabulary)` of the next token:

    p = softmax(α z)         α: the scale factor (the tutorial's); temperature T = 1/α
    top-k:   keep the k tokens with the largest z, renormalize
    top-p:   keep the fewest most probable tokens whose probabilities sum to ≥ p
             (nucleus sampling, Holtzman et al. 2019), renormalize
    greedy:  argmax z (no randomness)

applied in that order (scale, top-k, top-p). α > 1 sharpens the distribution
(more correct, more repetitive); α < 1 flattens it (more novel, more errors):
softmax([1, 1, 3]) = [0.1065, 0.1065, 0.7870]; with α = 0.5 [0.2119, 0.2119,
0.5761]; with α = 0.1 [0.3104, 0.3104, 0.3792].

Generation is incremental: the prime runs once through the model (its fast
sequence path), then each new token is one recurrent step from the carried
state (`seqlab.generation.stepping.Stepper`), never a re-run of the prefix; a
causal transformer's step runs one position over its cached keys and values
(`seqlab.generation.cached_stepping.CachedStepper`).
`num_samples` continuations of one prime generate together as one batch, and
`stream` yields every step's tokens as soon as they are drawn.

    >>> generator = TextGenerator(model, vocabulary)
    >>> for characters in generator.stream("The island", length=500, sampling=Sampling(scale_factor=2.0), seed=1):
    ...     print(characters[0], end="", flush=True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch

from seqlab.kernels import fused
from seqlab.generation.cached_stepping import CachedStepper
from seqlab.generation.stepping import Stepper, WindowStepper, stepper_for

__all__ = ["GenerationStep", "Sampling", "TextGenerator", "UnknownCharactersError", "generate_steps",
           "scale_logits", "top_k_mask", "top_p_mask"]


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen from logits: scale factor α, top-k, top-p, or greedy.

    `Sampling.create(temperature=T)` is `Sampling(scale_factor=1/T)`.

        >>> sampling = Sampling(scale_factor=2.0, top_k=5)
        >>> sampling.probabilities(torch.tensor([[1.0, 1.0, 3.0]])).round(decimals=4)
        tensor([[0.0177, 0.0177, 0.9647]])
    """

    scale_factor: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale_factor) and self.scale_factor > 0):
            raise ValueError(f"The scale factor α must be a positive number (α = 1/temperature), "
                             f"got {self.scale_factor}. Use --greedy for α → ∞.")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k must be a positive integer (how many tokens to keep), got {self.top_k!r}.")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (the probability mass to keep), got {self.top_p!r}.")

    @classmethod
    def create(cls, temperature: float | None = None, scale_factor: float | None = None,
               top_k: int | None = None, top_p: float | None = None, greedy: bool = False) -> "Sampling":
        """Build from either a temperature T or a scale factor α = 1/T (not both; neither: α = 1)."""
        if temperature is not None and scale_factor is not None:
            raise ValueError(f"Give a temperature ({temperature}) or a scale factor ({scale_factor}), not both: "
                             "the scale factor is 1/temperature.")
        if temperature is not None:
            if not (math.isfinite(temperature) and temperature > 0):
                raise ValueError(f"The temperature must be a positive number, got {temperature}. "
                                 "Use --greedy for temperature → 0.")
            scale_factor = 1.0 / temperature
        return cls(1.0 if scale_factor is None else float(scale_factor), top_k, top_p, greedy)

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale_factor

    def filter(self, logits: torch.Tensor, forbidden: torch.Tensor | None = None) -> torch.Tensor:
        """`α z` with -inf wherever a token is forbidden or cut by top-k / top-p; shape unchanged."""
        logits = scale_logits(logits.float(), self.scale_factor)
        if forbidden is not None and forbidden.numel():
            logits = logits.index_fill(-1, forbidden, -math.inf)
        if self.top_k is not None:
            logits = logits.masked_fill(~top_k_mask(logits, self.top_k), -math.inf)
        if self.top_p is not None:
            logits = logits.masked_fill(~top_p_mask(logits, self.top_p), -math.inf)
        return logits

    def probabilities(self, logits: torch.Tensor, forbidden: torch.Tensor | None = None) -> torch.Tensor:
        """The distribution tokens are drawn from, `(batch, vocabulary)` (one-hot at the argmax when greedy)."""
        filtered = self.filter(logits, forbidden)
        if self.greedy:
            return torch.zeros_like(filtered).scatter_(-1, filtered.argmax(-1, keepdim=True), 1.0)
        return torch.softmax(filtered, dim=-1)

    def choose(self, logits: torch.Tensor, generator: torch.Generator | None = None,
               forbidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw one token per row: `(ids (batch,), probabilities (batch, vocabulary))`."""
        probabilities = self.probabilities(logits, forbidden)
        if self.greedy:
            return probabilities.argmax(-1), probabilities
        return draw(probabilities, generator), probabilities


def draw(probabilities: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of `probabilities (batch, vocabulary)`, by inverting the cumulative distribution.

    `u ~ U[0, 1)` times the row's total; the first index whose running sum
    exceeds it. The distribution is `torch.multinomial(p, 1)`'s; entries of
    probability zero are never drawn (the running sum does not rise there).
    In float64, so rounding cannot carry `u` past the last entry. On the CPU
    with seqlab's C++ extension, one call (`csrc/sampling.cpp`): the same sums
    in the same order, so the same indices. For 64 rows of 80 characters the
    call takes 11-16 µs with the uniforms (its scan 2.7 µs), against 20-32 µs
    for these tensor operations and 122 µs for `torch.multinomial`.
    """
    u = torch.rand(probabilities.shape[0], 1, generator=generator, dtype=torch.float64,
                   device=probabilities.device)
    if (probabilities.device.type == "cpu" and probabilities.dtype in (torch.float32, torch.float64)
            and fused.available()):
        return fused.extension().draw(probabilities, u.view(-1))
    cumulative = probabilities.double().cumsum(-1)
    drawn = torch.searchsorted(cumulative, u * cumulative[:, -1:], right=True)
    return drawn.squeeze(-1).clamp_(max=cumulative.shape[-1] - 1)


def scale_logits(logits: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """`α z`: the tutorial's scaling (α = 1/temperature); `softmax(α z)` is the sampling distribution."""
    return logits if scale_factor == 1.0 else logits * scale_factor


def top_k_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """True at exactly the k largest logits of each row (ties broken by `torch.topk`); all when k ≥ vocabulary."""
    if k >= logits.shape[-1]:
        return torch.ones_like(logits, dtype=torch.bool)
    keep = torch.zeros_like(logits, dtype=torch.bool)
    return keep.scatter_(-1, logits.topk(k, dim=-1).indices, True)


def top_p_mask(logits: torch.Tensor, p: float) -> torch.Tensor:
    """True at the fewest most probable tokens whose softmax probabilities sum to at least p.

    In descending order of probability a token is kept when the mass before it
    is below p, so the most probable token is always kept.
    """
    probabilities = torch.softmax(logits, dim=-1)
    sorted_probabilities, order = probabilities.sort(dim=-1, descending=True)
    mass_before = sorted_probabilities.cumsum(dim=-1) - sorted_probabilities
    keep_sorted = mass_before < p
    keep_sorted[..., 0] = True
    return torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)


@dataclass
class GenerationStep:
    """One generated token per stream: `ids (batch,)` and the distribution they were drawn from."""

    ids: torch.Tensor
    probabilities: torch.Tensor


def generate_steps(model, prime: torch.Tensor, length: int, sampling: Sampling = Sampling(),
                   generator: torch.Generator | None = None, forbidden: Sequence[int] = (),
                   precision: str = "float32") -> Iterator[GenerationStep]:
    """Yield `length` steps continuing `prime (batch, time)`, one recurrent step per token.

    `model` is an Embedding → RNN(s) → Dense `Sequential`, a causal
    transformer `Sequential`, or a `Stepper` / `CachedStepper` / `WindowStepper`.
    The prime runs once; every later step feeds the drawn token back with the
    carried state. `forbidden` token ids (padding, unknown) are never drawn.
    `precision="bfloat16"`: a recurrent model's steps multiply by bfloat16
    copies of the recurrent kernels (see `seqlab.generation.stepping.Stepper`).

        >>> steps = generate_steps(model, torch.tensor([[5, 9, 2]] * 4), length=3, sampling=Sampling(top_k=5))
        >>> [tuple(step.ids.shape) for step in steps]
        [(4,), (4,), (4,)]
    """
    if length < 0:
        raise ValueError(f"length must be ≥ 0 (tokens to generate), got {length}.")
    stepper = (model if isinstance(model, (Stepper, CachedStepper, WindowStepper))
               else stepper_for(model, prime.shape[0], precision))
    device = stepper.device
    banned = torch.tensor(sorted(set(forbidden)), dtype=torch.long, device=device)
    logits = stepper.prime(prime.to(device))
    for index in range(length):
        ids, probabilities = sampling.choose(logits, generator, banned)
        yield GenerationStep(ids, probabilities)
        if index + 1 < length:
            logits = stepper.step(ids)


class UnknownCharactersError(ValueError):
    """A prime holds characters the model never saw in training."""

    def __init__(self, characters: Iterable[str]):
        self.characters = list(dict.fromkeys(characters))
        listed = ", ".join(f"{c!r} (U+{ord(c):04X})" if len(c) == 1 else repr(c) for c in self.characters)
        super().__init__(
            f"The prime has {len(self.characters)} character(s) the model never saw in training: {listed}. "
            "Remove or replace them, or allow them (--allow-unknown, allow_unknown=True) to map them "
            "to the unknown index.")


class TextGenerator:
    """Text in, text out: encodes a prime with the model's vocabulary and streams sampled characters.

    The vocabulary is a `seqlab.data.Vocabulary` over characters (0 = padding,
    last = unknown); padding and unknown are never generated.

        >>> generator = TextGenerator(model, vocabulary)
        >>> texts = generator.generate("The island", length=100, sampling=Sampling(scale_factor=2.0), num_samples=3)
        >>> [len(text) for text in texts]
        [110, 110, 110]
    """

    def __init__(self, model, vocabulary, precision: str = "float32"):
        self.model, self.vocabulary, self.precision = model, vocabulary, precision
        self.tokens = vocabulary.tokens
        self.forbidden = (vocabulary.pad_index, vocabulary.unknown_index)

    def encode(self, prime: str, allow_unknown: bool = False) -> list[int]:
        """The ids of `prime`'s characters; unknown ones raise `UnknownCharactersError` unless allowed."""
        if not prime:
            raise ValueError("The prime is empty: give at least one character to start from (e.g. 'The island').")
        unknown = [c for c in prime if c not in self.vocabulary]
        if unknown and not allow_unknown:
            raise UnknownCharactersError(unknown)
        return [self.vocabulary.index(c) for c in prime]

    def stream(self, prime: str, length: int, sampling: Sampling = Sampling(), num_samples: int = 1,
               seed: int | None = None, allow_unknown: bool = False) -> Iterator[list[str]]:
        """Yield, for each of `length` steps, the new character of every sample (a list of `num_samples`)."""
        for step in self._steps(prime, length, sampling, num_samples, seed, allow_unknown):
            yield [self.tokens[i] for i in step.ids.tolist()]

    def generate(self, prime: str, length: int, sampling: Sampling = Sampling(), num_samples: int = 1,
                 seed: int | None = None, allow_unknown: bool = False) -> list[str]:
        """`num_samples` texts, each the prime followed by `length` generated characters."""
        pieces: list[list[str]] = [[prime] for _ in range(num_samples)]
        for characters in self.stream(prime, length, sampling, num_samples, seed, allow_unknown):
            for piece, character in zip(pieces, characters):
                piece.append(character)
        return ["".join(piece) for piece in pieces]

    def _steps(self, prime: str, length: int, sampling: Sampling, num_samples: int, seed: int | None,
               allow_unknown: bool) -> Iterator[GenerationStep]:
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
        ids = torch.tensor([self.encode(prime, allow_unknown)]).expand(num_samples, -1)
        generator = torch.Generator(device=_device_of(self.model))
        generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        self.model.eval()
        return generate_steps(self.model, ids, length, sampling, generator, self.forbidden, self.precision)


def _device_of(model) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")
