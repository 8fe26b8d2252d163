"""Building the hot path's records and events a little sooner.

A frozen, slotted dataclass's generated ``__init__`` sets each field through
``object.__setattr__``, about 0.1 µs a field: 1.3–2.4 µs for an event of 9–12 fields, several
times per reading. Where the compiled kernel is installed, ``constructor(cls)`` returns a function
with ``cls``'s signature that allocates the instance and sets the same fields to the same values in
C (``crev_native.new_slotted``, ~0.4 µs): the same object, which ``==``, ``hash`` and every reader
cannot tell apart, except that one holding only atomic values (int, bool, float, str, bytes,
None) is left out of the cyclic collector's scans (``gc.is_tracked`` is False: no cycle can pass
through it, and refcounting frees it). It does so only for a slotted dataclass whose ``__init__``
does nothing but assign every field in order (no ``__post_init__``, every field in ``__init__``);
called with keywords or with fewer values than fields (defaults), or while
``use_codec_kernel(False)`` holds, it calls the class itself. Where the kernel is not installed
``constructor(cls)`` is ``cls``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, ParamSpec, TypeVar, cast

from crev.core import encoding
from crev.core.encoding import KERNEL

P = ParamSpec("P")
T = TypeVar("T")


def eligible(cls: type) -> bool:
    """Whether ``cls``'s ``__init__`` only assigns each of its fields, in order."""
    return (is_dataclass(cls) and "__slots__" in cls.__dict__ and not hasattr(cls, "__post_init__")
            and all(f.init for f in fields(cls)))


def constructor(cls: Callable[P, T]) -> Callable[P, T]:
    """``cls``, or the kernel's equivalent of it (see the module docstring)."""
    build = cls  # as typed: what ``make`` falls back on
    new = None if KERNEL is None else KERNEL.new_slotted
    if new is None or not isinstance(cls, type) or not eligible(cls):
        return cls
    names = tuple(f.name for f in fields(cls))
    n = len(names)

    def make(*args: P.args, **kwargs: P.kwargs) -> T:
        if kwargs or len(args) != n or encoding.codec_kernel() is None:
            return build(*args, **kwargs)
        return cast(T, new(cls, names, args))

    make.__doc__ = f"A new {cls.__name__} (crev.core.slotted.constructor)."
    return make


def kernel_new(cls: type, names: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    """``crev_native.new_slotted`` (for tests): None where the kernel is absent."""
    return None if KERNEL is None else KERNEL.new_slotted(cls, names, values)
