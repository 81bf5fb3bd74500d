"""One registry for everything seqlab writes as a config: `{"module", "class_name", "config"}`.

Layers, losses, metrics, optimizers, schedules, initializers, regularizers,
constraints, models and tokenizers are all saved the same way, as Keras 3
saves them:

    serialize(obj) = {"module": type(obj).__module__,   # where the class is defined
                      "class_name": its registered name,
                      "config": obj.get_config()}

and `deserialize(spec)` imports `module` (seqlab's own modules; a user's
module must be imported by the user, as Keras asks), then finds the class
in the registry by `class_name` and calls `from_config(config)`. So no module
needs a list of the modules above it, and a user's class round-trips as
soon as it is defined: subclasses of `Serializable` (every `Layer`, `Loss`,
`Metric`, `Optimizer`, schedule, initializer, regularizer and constraint)
register themselves under their class name; any other class (a `Model`, a
tokenizer) registers with `@register_serializable`.

    >>> @register_serializable
    ... class Vocab:
    ...     def __init__(self, words): self.words = words
    ...     def get_config(self): return {"words": self.words}
    ...     @classmethod
    ...     def from_config(cls, config): return cls(**config)
    >>> deserialize(serialize(Vocab(["a", "b"]))).words
    ['a', 'b']

This module imports no seqlab class: it is the bottom of the house.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["Serializable", "SerializationError", "deserialize", "find_class", "register_serializable",
           "registered_name", "serialize"]

# registered name -> {defining module -> class}: two classes may share a name if their modules differ.
_REGISTRY: dict[str, dict[str, type]] = {}
_NAME_OF: dict[type, str] = {}
# Modules `deserialize` imports on its own: seqlab's. Anything else the user imports (a config file
# must not be able to make seqlab import arbitrary code).
_IMPORTABLE_PACKAGE = "seqlab"


class SerializationError(ValueError):
    """A saved spec names a class that cannot be found, or one of the wrong kind."""


class Serializable:
    """Base for families of configurable objects: each subclass registers itself when defined.

    `from_config(config)` defaults to `cls(**config)`, the inverse of a
    `get_config()` that returns the constructor arguments.
    """

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _register(cls, cls.__name__)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        return cls(**config)


def register_serializable(cls: type | None = None, *, name: str | None = None):
    """Class decorator: let `deserialize` (and `load_model`) rebuild `cls` from its `get_config()`.

    The class needs `get_config()` and a classmethod `from_config(config)`;
    `name` (default: the class name) is what the saved spec calls it.

        >>> @register_serializable
        ... class TinyModel(Model): ...
    """
    def register(target: type) -> type:
        for method in ("get_config", "from_config"):
            if not callable(getattr(target, method, None)):
                raise TypeError(f"{target.__name__} cannot be registered: it has no {method}().")
        automatic = _NAME_OF.get(target)
        if automatic is not None and automatic != (name or target.__name__):
            _REGISTRY[automatic].pop(target.__module__, None)  # only the chosen name refers to it
        _register(target, name or target.__name__)
        return target

    return register(cls) if cls is not None else register


def registered_name(cls: type) -> str:
    """The name `cls` is registered under; a TypeError saying how to register it otherwise."""
    name = _NAME_OF.get(cls)
    if name is None:
        raise TypeError(
            f"{cls.__name__} cannot be saved: it is not registered. Give it get_config() and a "
            "from_config(config) classmethod and decorate it with @seqlab.saving.register_serializable."
        )
    return name


def serialize(obj: Any) -> dict[str, Any] | None:
    """`{"module", "class_name", "config"}` of a registered object; None stays None.

    Raises TypeError when the class is not registered or its `get_config()` refuses.
    """
    if obj is None:
        return None
    cls = type(obj)
    return {"module": cls.__module__, "class_name": registered_name(cls), "config": obj.get_config()}


def deserialize(spec: dict[str, Any], *, expected: type | tuple[type, ...] = object, what: str = "object") -> Any:
    """Rebuild the object `serialize` described, checking it is an `expected` (e.g. a Layer).

    Specs without "module" (files of format 1) are found by name alone among
    the registered classes of the expected kind.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise SerializationError(f"A saved {what} must be a dict with 'class_name' and 'config', got {spec!r}.")
    cls = find_class(spec["class_name"], spec.get("module"), expected=expected, what=what)
    return cls.from_config(dict(spec.get("config") or {}))


def find_class(name: str, module: str | None, *, expected: type | tuple[type, ...] = object,
               what: str = "object") -> type:
    """The registered class called `name`, preferring the one defined in `module` (imported first)."""
    import_failure = _import(module) if module else None
    defined_in = {where: cls for where, cls in _REGISTRY.get(name, {}).items() if issubclass(cls, expected)}
    if module in defined_in:
        return defined_in[module]
    if len(defined_in) == 1:  # the class moved to another module since the file was written
        return next(iter(defined_in.values()))
    if defined_in:
        raise SerializationError(
            f"The saved {what} {name!r} is ambiguous: classes of that name are registered in "
            f"{sorted(defined_in)} and the file names {module!r}. Register one of them under another name."
        )
    raise SerializationError(_unknown_class_message(name, module, expected, what, import_failure))


def _register(cls: type, name: str) -> None:
    _REGISTRY.setdefault(name, {})[cls.__module__] = cls
    _NAME_OF[cls] = name


def _import(module: str) -> str | None:
    """Import `module` if seqlab may; the reason it is not available otherwise (None when it is)."""
    if module in sys.modules:
        return None
    if module != _IMPORTABLE_PACKAGE and not module.startswith(_IMPORTABLE_PACKAGE + "."):
        return f"the module {module!r} that defined it is not imported"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or not module.startswith(error.name):
            raise  # the module exists but needs something missing: that is the error to see
        return f"the module {module!r} that defined it no longer exists"
    return None


def _unknown_class_message(name: str, module: str | None, expected: Any, what: str, import_failure: str | None) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    known = sorted(n for n, classes in _REGISTRY.items() if any(issubclass(c, kinds) for c in classes.values()))
    shown = known if len(known) <= 40 else known[:40] + ["..."]
    return (f"The saved {what} is a {name!r}, which is not a registered class"
            f"{f' ({import_failure})' if import_failure else ''} (registered: {shown}). "
            f"Import the module that defines it{f' ({module})' if module else ''} before loading: a Layer, "
            "Loss, Metric, Optimizer... subclass registers itself when defined, any other class needs "
            "@seqlab.saving.register_serializable.")
