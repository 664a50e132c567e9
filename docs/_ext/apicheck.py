# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every public name is documented: with a docstring in the source, and on a
page of the site.

A Sphinx extension run by the docs build (``apicheck_modules`` in conf.py
lists what is public), and a script for a quick look without Sphinx::

    PYTHONPATH=. python docs/_ext/apicheck.py     # names without a docstring

Public means: a module's ``__all__`` when it has one, else its classes and
functions whose names do not start with ``_``; and of each such class, the
methods, class and static methods and properties its own body defines
(inherited ones are documented where they are defined).  A method that
overrides a documented one may go without a docstring: it shows the one it
inherits, as autodoc does.  Data (``__version__``, constants in an
``__all__``) cannot carry a docstring; it only has to be on a page.

Each miss is a Sphinx warning, so the build (``-W``) fails on it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from collections.abc import Iterable

_MEMBER_KINDS = (classmethod, staticmethod, property)


@dataclasses.dataclass
class Entry:
    """A public object, the names it is reachable by, and its public members."""

    obj: object
    names: list[str]
    members: list[str] = dataclasses.field(default_factory=list)

    @property
    def where(self) -> str:
        """Where the source defines it: ``module.qualname`` (data: its first name)."""
        if self.kind == "data":
            return self.names[0]
        return f"{self.obj.__module__}.{self.obj.__qualname__}"

    @property
    def kind(self) -> str:
        if inspect.isclass(self.obj):
            return "class"
        if inspect.isfunction(self.obj) or inspect.isbuiltin(self.obj):
            return "function"
        return "data"


def _public_names(module) -> Iterable[tuple[str, object]]:
    names = getattr(module, "__all__", None)
    if names is not None:
        for name in names:
            yield name, getattr(module, name)
        return
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
            yield name, obj


def _own_members(cls: type) -> list[str]:
    found = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, _MEMBER_KINDS) or inspect.isfunction(value):
            found.append(name)
    return found


def collect(modules: Iterable[str]) -> list[Entry]:
    """The public objects of ``modules``, each once, with every public name."""
    entries: dict[object, Entry] = {}
    for modname in modules:
        module = importlib.import_module(modname)
        for name, obj in _public_names(module):
            if inspect.ismodule(obj):
                continue  # a subpackage: listed in apicheck_modules on its own
            # Classes and functions are the same object under every name;
            # data is told apart by name (equal strings may be one object).
            key = id(obj) if inspect.isclass(obj) or inspect.isfunction(obj) else (modname, name)
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = Entry(obj, [])
                if inspect.isclass(obj):
                    entry.members = _own_members(obj)
            entry.names.append(f"{modname}.{name}")
    return list(entries.values())


def _function(value: object) -> object:
    return value.__func__ if isinstance(value, (classmethod, staticmethod)) else value


def _generated(cls: type, doc: str) -> bool:
    """The docstring namedtuple or dataclass wrote for a class that had none:
    ``Name(field, ...)``."""
    return doc.startswith(f"{cls.__name__}(")


def has_docstring(obj: object) -> bool:
    """The object carries its own docstring (a class: not a generated one)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        return bool(doc and doc.strip()) and not _generated(obj, doc)
    return bool((getattr(obj, "__doc__", None) or "").strip())


def member_has_docstring(cls: type, name: str) -> bool:
    """The member's docstring, or that of what it overrides in a base class
    (autodoc shows the inherited one)."""
    for klass in cls.__mro__:
        value = klass.__dict__.get(name)
        if value is not None and (getattr(_function(value), "__doc__", None) or "").strip():
            return True
    return False


def undocumented_in_source(entries: Iterable[Entry]) -> list[str]:
    """Names of classes, functions and members without a docstring."""
    missing = []
    for entry in entries:
        if entry.kind != "data" and not has_docstring(entry.obj):
            missing.append(entry.where)
        for member in entry.members:
            if not member_has_docstring(entry.obj, member):
                missing.append(f"{entry.where}.{member}")
    return missing


# -- the Sphinx side -------------------------------------------------------------


def _check(app, env) -> None:  # env-check-consistency
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    entries = collect(app.config.apicheck_modules)
    undocumented = undocumented_in_source(entries)
    for name in undocumented:
        log.warning("public name without a docstring: %s", name, type="apicheck")
    documented = set(env.domains["py"].objects)
    for entry in entries:
        pages = [n for n in entry.names if n in documented]
        if not pages and entry.where in undocumented:
            continue  # said above; autodoc leaves out what has no docstring
        if not pages:
            log.warning("public name on no page of the documentation: %s",
                        " = ".join(entry.names), type="apicheck")
            continue
        for member in entry.members:
            if f"{entry.where}.{member}" in undocumented:
                continue
            if not any(f"{page}.{member}" in documented for page in pages):
                log.warning("public name on no page of the documentation: %s.%s",
                            pages[0], member, type="apicheck")


def setup(app):
    app.add_config_value("apicheck_modules", [], "env")
    app.connect("env-check-consistency", _check)
    return {"version": "1", "parallel_read_safe": True}


if __name__ == "__main__":
    sys.path.insert(0, ".")
    sys.path.insert(0, "docs")
    import conf  # the module list, as the build reads it

    missing = undocumented_in_source(collect(conf.apicheck_modules))
    print("\n".join(missing) or "every public name has a docstring")
    sys.exit(1 if missing else 0)
