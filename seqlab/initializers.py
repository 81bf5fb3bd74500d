"""Weight initializers by Keras name.

An initializer is called with a shape and returns a new tensor:
`initializers.get("glorot_uniform")((10, 3))`. The formulas are Keras':
`glorot_uniform` draws from U(-l, l) with l = sqrt(6 / (fan_in + fan_out)),
where for a 2-D kernel `(in, out)` fan_in = in and fan_out = out; the
`*_normal` variance-scaling initializers draw from a normal truncated at two
standard deviations; `orthogonal` gives a (semi-)orthogonal matrix; the LSTM
forget-gate bias of 1 (`unit_forget_bias`) is handled by the LSTM cell.

    >>> from seqlab import initializers
    >>> w = initializers.get("orthogonal")((4, 4))
    >>> torch.allclose(w @ w.T, torch.eye(4), atol=1e-6)
    True
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Sequence

import torch

from seqlab import identifiers, serialization

Shape = Sequence[int]


class Initializer(serialization.Serializable, ABC):
    """Base class: `__call__(shape, dtype, device)` returns a fresh tensor."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
        tensor = torch.empty(tuple(shape), dtype=dtype or torch.get_default_dtype(), device=device)
        with torch.no_grad():
            self.fill(tensor, self._generator(tensor.device))
        return tensor

    @abstractmethod
    def fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        """Write the initial values into `tensor` in place."""

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed)
        return generator

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


def compute_fans(shape: Shape) -> tuple[float, float]:
    """Keras' fan_in/fan_out: `(in, out)` for a matrix, `(n, n)` for a vector."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive_field = math.prod(shape[:-2])
    return float(shape[-2] * receptive_field), float(shape[-1] * receptive_field)


class Zeros(Initializer):
    def fill(self, tensor, generator):
        tensor.zero_()


class Ones(Initializer):
    def fill(self, tensor, generator):
        tensor.fill_(1.0)


class Constant(Initializer):
    def __init__(self, value: float = 0.0):
        super().__init__()
        self.value = value

    def fill(self, tensor, generator):
        tensor.fill_(self.value)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    """U(minval, maxval); Keras' default range is (-0.05, 0.05)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def fill(self, tensor, generator):
        tensor.uniform_(self.minval, self.maxval, generator=generator)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    """N(mean, stddev^2); Keras' default stddev is 0.05."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def fill(self, tensor, generator):
        tensor.normal_(self.mean, self.stddev, generator=generator)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """N(mean, stddev^2) with values beyond two standard deviations redrawn."""

    def fill(self, tensor, generator):
        _truncated_normal(tensor, self.mean, self.stddev, generator)


def _truncated_normal(tensor: torch.Tensor, mean: float, stddev: float,
                      generator: torch.Generator | None) -> None:
    # Inverse-CDF sampling inside [-2, 2] standard deviations (as Keras' truncation).
    low, high = (1 + math.erf(-2 / math.sqrt(2))) / 2, (1 + math.erf(2 / math.sqrt(2))) / 2
    tensor.uniform_(2 * low - 1, 2 * high - 1, generator=generator)
    tensor.erfinv_().mul_(stddev * math.sqrt(2.0)).add_(mean)
    tensor.clamp_(mean - 2 * stddev, mean + 2 * stddev)


class VarianceScaling(Initializer):
    """Scale / fan: uniform U(-sqrt(3 s / n), +) or truncated normal with std sqrt(s / n) / .8796."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}.")
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(
                "distribution must be 'uniform', 'truncated_normal' or 'untruncated_normal', "
                f"got {distribution!r}."
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def fill(self, tensor, generator):
        fan_in, fan_out = compute_fans(tensor.shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            tensor.uniform_(-limit, limit, generator=generator)
        elif self.distribution == "truncated_normal":
            # 0.8796... is the std of a unit normal truncated to [-2, 2].
            _truncated_normal(tensor, 0.0, math.sqrt(variance) / 0.87962566103423978, generator)
        else:
            tensor.normal_(0.0, math.sqrt(variance), generator=generator)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "seed": self.seed}


class GlorotUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class HeNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class LecunUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


class LecunNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times `gain` (Saxe et al. 2014), Keras' recurrent default."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = gain

    def fill(self, tensor, generator):
        rows = tensor.shape[0] if tensor.dim() > 0 else 1
        cols = tensor.numel() // rows
        flat = torch.empty(max(rows, cols), min(rows, cols), dtype=tensor.dtype, device=tensor.device)
        flat.normal_(0.0, 1.0, generator=generator)
        q, r = torch.linalg.qr(flat)
        q = q * torch.sign(torch.diagonal(r))  # makes the distribution uniform (Haar)
        if rows < cols:
            q = q.T
        tensor.copy_(self.gain * q.reshape(tensor.shape))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """`gain` times the identity matrix (2-D only)."""

    def __init__(self, gain: float = 1.0):
        super().__init__()
        self.gain = gain

    def fill(self, tensor, generator):
        if tensor.dim() != 2:
            raise ValueError(f"The identity initializer needs a 2-D shape, got {tuple(tensor.shape)}.")
        tensor.copy_(self.gain * torch.eye(*tensor.shape, dtype=tensor.dtype, device=tensor.device))

    def get_config(self):
        return {"gain": self.gain}


_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "uniform": RandomUniform,
    "random_uniform": RandomUniform,
    "normal": RandomNormal,
    "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
    "identity": Identity,
}


def get(identifier: str | dict | Initializer) -> Initializer:
    """An initializer from a Keras name, a `{"class_name", "config"}` dict or an instance."""
    return identifiers.resolve(identifier, kind="initializer", by_name=_BY_NAME, base=Initializer,
                               module="seqlab.initializers", allow_none=False)


serialize = serialization.serialize
