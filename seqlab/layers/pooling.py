"""Global pooling over time: `GlobalAveragePooling1D`, `GlobalMaxPooling1D`.

They turn a sequence `(batch, time, features)` into one vector
`(batch, features)` (`(batch, 1, features)` with `keepdims=True`;
`data_format="channels_first"` reads `(batch, features, time)`). With a mask
`(batch, time)` only the real steps count, so a padded batch gives each
sequence's own result:

    average: Σ_t m_t x_t / Σ_t m_t        (Keras' masked mean)
    max:     max over the steps with m_t = True

A sequence with no real step has no average or maximum: it gives NaN
(0/0, as in Keras). Both consume the mask (the output has none).

    >>> x = Embedding(100, 8, mask_zero=True)(torch.tensor([[4, 9, 0, 0]]))
    >>> GlobalAveragePooling1D()(x).shape               # the mean of the first two steps
    torch.Size([1, 8])
"""

from __future__ import annotations

import abc

import torch

from seqlab.layers.attention import check_mask, check_sequence_shape
from seqlab.layers.base import Layer, Shape

DATA_FORMATS = ("channels_last", "channels_first")


class _GlobalPooling1D(Layer, abc.ABC):
    supports_masking = True

    def __init__(self, data_format: str = "channels_last", keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        data_format = (data_format or "channels_last").lower()
        if data_format not in DATA_FORMATS:
            raise ValueError(f"{self.name}: data_format must be one of {DATA_FORMATS}, got {data_format!r}.")
        self.data_format = data_format
        self.keepdims = bool(keepdims)
        if self.auto_named:  # Keras' name: global_average_pooling1d
            self.name = self.name.replace("1_d", "1d")

    def build(self, input_shape: Shape) -> None:
        check_sequence_shape(self.name, input_shape)
        self.built = True

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence_shape(self.name, tuple(inputs.shape))
        steps_axis = 1 if self.data_format == "channels_last" else 2
        if mask is not None:
            by_time = inputs if steps_axis == 1 else inputs.transpose(1, 2)
            mask = check_mask(mask, by_time, self.name, "mask").unsqueeze(3 - steps_axis)
        return self.pool(inputs, mask, steps_axis)

    @abc.abstractmethod
    def pool(self, inputs: torch.Tensor, mask: torch.Tensor | None, steps_axis: int) -> torch.Tensor:
        """Reduce `inputs` over `steps_axis`, counting only the steps where `mask` is True."""

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        batch, features = input_shape[0], input_shape[2 if self.data_format == "channels_last" else 1]
        if not self.keepdims:
            return (batch, features)
        return (batch, 1, features) if self.data_format == "channels_last" else (batch, features, 1)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over time, of the real steps only when masked (see the module docstring).

        >>> pool = GlobalAveragePooling1D()
        >>> pool(torch.tensor([[[1.0], [3.0], [8.0]]]), mask=torch.tensor([[True, True, False]]))
        tensor([[2.]])
    """

    def pool(self, inputs, mask, steps_axis):
        if mask is None:
            return inputs.mean(dim=steps_axis, keepdim=self.keepdims)
        total = torch.where(mask, inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device))
        return total.sum(steps_axis, keepdim=self.keepdims) / mask.to(inputs.dtype).sum(
            steps_axis, keepdim=self.keepdims)


class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over time, of the real steps only when masked (see the module docstring).

        >>> pool = GlobalMaxPooling1D()
        >>> pool(torch.tensor([[[1.0], [3.0], [8.0]]]), mask=torch.tensor([[True, True, False]]))
        tensor([[3.]])
    """

    def pool(self, inputs, mask, steps_axis):
        if mask is None:
            return inputs.amax(dim=steps_axis, keepdim=self.keepdims)
        hidden = torch.tensor(float("-inf"), dtype=inputs.dtype, device=inputs.device)
        maximum = torch.where(mask, inputs, hidden).amax(dim=steps_axis, keepdim=self.keepdims)
        any_real = mask.any(dim=steps_axis, keepdim=self.keepdims)
        return torch.where(any_real, maximum, torch.full_like(maximum, float("nan")))
