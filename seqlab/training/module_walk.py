"""Finding the modules of a model that implement a protocol (`losses`, `apply_constraints`, ...).

Keras' layer methods cover their sublayers: `layer.losses` includes the
penalties of nested layers, `apply_constraints()` projects theirs too. So the
engine asks the *outermost* modules that implement a protocol and does not
descend into them (which would count a penalty twice). Plain `torch.nn`
modules are walked through.

    >>> [type(m).__name__ for m in outermost_modules_with(model, "reset_states")]
    ['Sequential']
"""

from __future__ import annotations

from typing import Iterator

import torch

__all__ = ["outermost_modules_with"]


def outermost_modules_with(module: torch.nn.Module, attribute: str) -> Iterator[torch.nn.Module]:
    """`module` itself if it has `attribute`, else the outermost descendants that have it."""
    if _implements(module, attribute):
        yield module
        return
    for child in module.children():
        yield from outermost_modules_with(child, attribute)


def _implements(module: torch.nn.Module, attribute: str) -> bool:
    # Look on the class (and instance dict) so that a property such as `losses` is not evaluated.
    return hasattr(type(module), attribute) or attribute in vars(module)
