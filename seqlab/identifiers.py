"""Resolve Keras-style identifiers: a name, a `{"module", "class_name", "config"}` dict, an instance or None.

Shared by `initializers`, `regularizers` and `constraints`, which differ only
in their tables of names; dicts go through the one registry
(`seqlab.serialization`), so a user's subclass round-trips too:

    >>> resolve("l2", kind="regularizer", by_name={"l2": L2}, base=L1L2, module="seqlab.regularizers")
    L2(...)
"""

from __future__ import annotations

from typing import Any, Callable

from seqlab import serialization


def resolve(identifier: Any, *, kind: str, by_name: dict[str, Callable[[], Any]], base: type,
            module: str, allow_none: bool = True) -> Any:
    """The object `identifier` names; a clear error listing the known names otherwise."""
    if (identifier is None and allow_none) or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, dict):
        return serialization.deserialize(identifier, expected=base, what=kind)
    if isinstance(identifier, str) and identifier in by_name:
        return by_name[identifier]()
    none_hint = "None, " if allow_none else ""
    raise ValueError(
        f"Unknown {kind} {identifier!r}. Use one of {sorted(by_name)}, {none_hint}a config dict, "
        f"or an instance of {module}.{base.__name__}."
    )
