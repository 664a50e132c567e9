# SPDX-License-Identifier: LGPL-2.1-or-later
"""``NamedTuple`` class syntax without importing ``typing`` at run time.

Every record in the library (``DevNo``, ``DeviceInfo``, ``Target``, ...) is
a NamedTuple, and importing ``typing`` - with the ``re``, ``contextlib`` and
``warnings`` it pulls in - was a third of what pydmsetup's start-up costs
beyond the bare interpreter.  This builds the class ``typing.NamedTuple``
builds: ``collections.namedtuple`` over the annotated fields, with their
defaults and the class body's methods, docstring and properties.  Type
checkers see ``typing.NamedTuple`` itself.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # What the class body may not define, as in typing: namedtuple's own.
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                             "_field_defaults", "_make", "_replace", "_asdict", "_source"})
    _KEPT = frozenset({"__module__", "__name__", "__annotations__"})

    class _NamedTupleMeta(type):
        def __new__(mcls, typename, bases, ns):
            if ns.get("_root"):
                return super().__new__(mcls, typename, bases, ns)
            if bases != (NamedTuple,):
                raise TypeError("a NamedTuple class can only inherit from NamedTuple")
            fields = ns.get("__annotations__", {})
            defaults = [name for name in fields if name in ns]
            if defaults and defaults != list(fields)[-len(defaults):]:
                raise TypeError(f"{typename}: a field without a default follows one with a default")
            cls = collections.namedtuple(typename, list(fields), module=ns["__module__"],
                                         defaults=[ns[name] for name in defaults])
            cls.__annotations__ = dict(fields)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
                if key not in _KEPT and key not in cls._fields:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        _root = True


# ``build(Cls, (field, ...))``: a record of any of these classes from fields
# already in hand, without the namedtuple's own ``__new__`` - a Python
# function, so a frame per record, which the hot paths (every ioctl reply,
# every listed device and target) do not pay.
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TypeVar

    _Record = TypeVar("_Record", bound="tuple[Any, ...]")

    def build(cls: type[_Record], fields: Iterable[object], /) -> _Record: ...
else:
    build = tuple.__new__
