"""A mask analysed once, at the layer boundary: which steps of each row are real.

A recurrent layer validates its `mask (batch, time)` (True = real step) and
analyses it into a `Padding`, which it and every path below it read:

    no padding     `mask` None (no mask given, or every step real)
    blocks         each row's real steps are one contiguous block (right-, left- or
                   both-padded): `blocks.starts (batch,)`, `blocks.lengths (batch,)`
    irregular      a row with a hole, or with no real step: only a masked loop runs it

The native kernels and the C++ loop run a blocked batch sorted by length,
each row's block gathered to the front (`Blocks.gather_to_front`) and the
outputs put back where Keras has them (`Blocks.scatter_back`). A layer that
reads backwards reads the padding flipped (`Padding.flipped`). The blocks are
found on first use, so a path that needs only the mask pays nothing more.

    >>> padding = Padding.of(torch.tensor([[1, 1, 0], [0, 1, 1]]).bool())
    >>> padding.blocks.starts, padding.blocks.lengths
    (tensor([0, 1]), tensor([2, 2]))
"""

from __future__ import annotations

from functools import cached_property

import torch


class Blocks:
    """Where each row's real steps are: `starts (batch,)`, `lengths (batch,)` (one block per row)."""

    def __init__(self, starts: torch.Tensor, lengths: torch.Tensor, time: int):
        self.starts, self.lengths, self.time = starts, lengths, time

    @classmethod
    def of(cls, mask: torch.Tensor) -> "Blocks | None":
        """The blocks of `mask (batch, time)`, or None if a row is empty or not contiguous."""
        lengths = mask.sum(dim=1)
        starts = mask.int().argmax(dim=1)
        steps = torch.arange(mask.shape[1], device=mask.device)
        block = (steps >= starts[:, None]) & (steps < (starts + lengths)[:, None])
        if bool((lengths == 0).any()) or not torch.equal(block, mask):
            return None
        return cls(starts, lengths, mask.shape[1])

    @property
    def full(self) -> bool:
        return bool((self.lengths == self.time).all())

    def flipped(self) -> "Blocks":
        """The same blocks with time read from the end."""
        return Blocks(self.time - self.starts - self.lengths, self.lengths, self.time)

    def gather_to_front(self, inputs: torch.Tensor) -> torch.Tensor:
        """Shift each row's block to start at step 0 (right padding)."""
        if not bool(self.starts.any()):
            return inputs
        steps = torch.arange(self.time, device=inputs.device)
        source = (self.starts[:, None] + steps).clamp(max=self.time - 1)
        return inputs.gather(1, source[:, :, None].expand(-1, -1, inputs.shape[-1]))

    def scatter_back(self, outputs: torch.Tensor, zero_after: bool) -> torch.Tensor:
        """Right-padded outputs → Keras' layout (zeros before the block, held or zeros after)."""
        steps = torch.arange(self.time, device=outputs.device)[None, :]
        offset = steps - self.starts[:, None]
        source = offset.clamp(min=0).minimum(self.lengths[:, None] - 1)
        placed = outputs.gather(1, source[:, :, None].expand(-1, -1, outputs.shape[-1]))
        empty = offset < 0
        if zero_after:
            empty = empty | (offset >= self.lengths[:, None])
        return placed.masked_fill(empty[:, :, None], 0.0)


class Padding:
    """A validated bool mask `(batch, time)` analysed (see the module docstring).

    `given`: the mask as validated (None: no mask given); `mask`: the same, or None when
    nothing is padded (no mask, or every step real), which is what the paths read.
    """

    def __init__(self, given: torch.Tensor | None, mask: torch.Tensor | None):
        self.given, self.mask = given, mask

    @classmethod
    def of(cls, mask: torch.Tensor | None) -> "Padding":
        """Analyse a validated bool `mask (batch, time)`, or None (no mask)."""
        return cls(mask, None if mask is None or bool(mask.all()) else mask)

    @property
    def padded(self) -> bool:
        """Whether any step of any row is padding."""
        return self.mask is not None

    @cached_property
    def blocks(self) -> Blocks | None:
        """One block per row, or None (nothing padded, or `irregular`)."""
        return None if self.mask is None else Blocks.of(self.mask)

    @property
    def irregular(self) -> bool:
        """Whether a row has a hole or no real step at all (only a masked loop runs it)."""
        return self.padded and self.blocks is None

    def flipped(self) -> "Padding":
        """The padding of the sequence read from its end (`go_backwards`)."""
        if self.given is None:
            return self
        flipped = Padding(self.given.flip(1), None if self.mask is None else self.mask.flip(1))
        if "blocks" in self.__dict__:  # already analysed: flip it rather than look again
            flipped.blocks = None if self.blocks is None else self.blocks.flipped()
        return flipped
