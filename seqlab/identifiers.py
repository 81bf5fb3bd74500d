"""Resolve Keras-style identifiers: a name, a `{"class_name", "config"}` dict, an instance or None.

Shared by `initializers`, `regularizers` and `constraints`, which differ only
in their tables:

    >>> resolve("l2", kind="regularizer", by_name={"l2": L2}, base=L1L2, module="seqlab.regularizers")
    L2(...)
"""

from __future__ import annotations

from typing import Any, Callable


def resolve(identifier: Any, *, kind: str, by_name: dict[str, Callable[[], Any]], base: type,
            module: str, allow_none: bool = True) -> Any:
    """The object `identifier` names; a clear error listing the known names otherwise."""
    if (identifier is None and allow_none) or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, dict):
        by_class = {cls.__name__: cls for cls in by_name.values() if isinstance(cls, type)}
        cls = by_class.get(identifier.get("class_name", ""))
        if cls is not None:
            return cls(**identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in by_name:
        return by_name[identifier]()
    none_hint = "None, " if allow_none else ""
    raise ValueError(
        f"Unknown {kind} {identifier!r}. Use one of {sorted(by_name)}, {none_hint}"
        f"or an instance of {module}.{base.__name__}."
    )


def serialize(obj: Any) -> dict[str, Any] | None:
    """`{"class_name", "config"}` for configs; None stays None."""
    if obj is None:
        return None
    return {"class_name": type(obj).__name__, "config": obj.get_config()}
