"""The two distributions of Word2Vec's training: the noise words and the kept words.

Negative sampling draws its noise words from the unigram distribution raised
to 3/4 (Mikolov et al. 2013), which lifts rare words against frequent ones:

    P_noise(w) = count(w)^0.75 / Σ_v count(v)^0.75

`noise_table` holds its running sums as integers (the kernel draws r uniform
in [0, total) and takes the first w whose running sum exceeds r), scaled so
the total is 2^31 - 1 like gensim's `cum_table`; every word keeps weight >= 1.

Subsampling drops frequent words (the, a, of) from the text before the
windows are cut, each occurrence of w kept with the probability word2vec.c
and gensim use, for a threshold t (`sample`, 1e-3 by default) and N the
corpus' words:

    keep(w) = (sqrt(count(w) / (t N)) + 1) · t N / count(w),   capped at 1

so words rarer than about t N are always kept. `sample=0` keeps every word.

    >>> keep_probabilities(torch.tensor([1000, 1]), sample=1e-3)   # N = 1001
    tensor([0.0326, 1.0000])
"""

from __future__ import annotations

import torch

NOISE_POWER = 0.75
NOISE_TOTAL = 2**31 - 1


def noise_probabilities(counts: torch.Tensor, power: float = NOISE_POWER) -> torch.Tensor:
    """P_noise (float64, sums to 1) for word counts (V,)."""
    weights = counts.double() ** power
    return weights / weights.sum()


def noise_table(counts: torch.Tensor, power: float = NOISE_POWER) -> torch.Tensor:
    """Running sums (V,) int64 of the noise weights scaled to NOISE_TOTAL; each word's share at least 1."""
    if counts.numel() == 0 or int(counts.min()) < 1:
        raise ValueError("the noise distribution needs at least one word, each counted at least once")
    shares = (noise_probabilities(counts, power) * NOISE_TOTAL).round().clamp(min=1).long()
    return shares.cumsum(0)


def keep_probabilities(counts: torch.Tensor, sample: float) -> torch.Tensor:
    """keep(w) (V,) float32 for subsampling threshold `sample` (0: keep every word)."""
    if sample < 0:
        raise ValueError(f"sample must be >= 0 (0 turns subsampling off), got {sample}")
    if sample == 0:
        return torch.ones(counts.shape, dtype=torch.float32)
    threshold = sample * counts.sum().double()
    frequency = counts.double()
    keep = ((frequency / threshold).sqrt() + 1) * threshold / frequency
    return keep.clamp(max=1).float()
