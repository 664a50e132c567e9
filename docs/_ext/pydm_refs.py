# SPDX-License-Identifier: LGPL-2.1-or-later
"""Cross-references the Python domain cannot resolve by itself.

The library keeps ``typing`` and most of its own imports out of run time
(start-up cost; see ``pydevmapper/_namedtuple.py``), so many annotations
stay strings that autodoc cannot evaluate: ``DeviceId``, ``TargetStatus``,
``Message``.  And an object is documented once, under the module that
defines it (``pydevmapper.types.DevNo``), while prose and some annotations
name it as the package exports it (``pydevmapper.DevNo``,
``pydevmapper.targets.ThinPool``).  A reference that is still missing is
resolved here:

1. by any public name of the same object (``apicheck`` collects them), and
2. an unqualified or partly qualified name (``DeviceId``, ``kmsg.X``) by
   the one documented object whose full name ends with it, preferring the
   referring page's module.

What matches nothing stays a warning (the build fails on it), and
``nitpick_ignore`` in conf.py lists, with reasons, what cannot resolve.

An annotation naming a builtin (``type[Params]``) means the builtin: its
reference is made exact before resolution, so the fuzzy search does not
offer every record's ``type`` field instead.

It also drops namedtuple's "Alias for field number N" docstrings: the
fields still show, with their types, without the noise.
"""

from __future__ import annotations

import builtins
import inspect
import re

import apicheck
from sphinx.addnodes import pending_xref
from sphinx.util.nodes import make_refnode

_ALIAS_DOC = re.compile(r"Alias for field number \d+$")


def _aliases(app) -> dict[str, list[str]]:
    """Every public name and every defining ``module.qualname`` -> all public names."""
    table = getattr(app, "_pydm_aliases", None)
    if table is None:
        table = {}
        for entry in apicheck.collect(app.config.apicheck_modules):
            names = list(entry.names)
            obj = entry.obj
            if inspect.isclass(obj) or inspect.isfunction(obj):
                names.append(f"{obj.__module__}.{obj.__qualname__}")
            for name in names:
                table[name] = names
        app._pydm_aliases = table
    return table


def _resolve(app, env, node, contnode):  # missing-reference
    if node.get("refdomain") != "py":
        return None
    objects = env.domains["py"].objects
    target = node["reftarget"].lstrip("~.")
    candidates = []
    # A member of a class documented under another name: resolve the class.
    head, _, member = target.rpartition(".")
    for name, tail in ((target, ""), (head, "." + member)):
        for alias in _aliases(app).get(name, []):
            candidates.append(alias + tail)
    found = [c for c in candidates if c in objects]
    if not found:
        suffix = "." + target
        found = [name for name in objects if name.endswith(suffix)]
        module = node.get("py:module") or ""
        near = [name for name in found if name.startswith(module + ".")] if module else []
        found = near or found
        if len(found) != 1:
            return None
    entry = objects[found[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, found[0])


def _builtins_exact(app, doctree):  # doctree-read
    for node in doctree.findall(pending_xref):
        if node.get("refdomain") == "py" and hasattr(builtins, node.get("reftarget", "")):
            node.attributes.pop("refspecific", None)  # the domain tests for its presence


def _drop_alias_docs(app, what, name, obj, options, lines):  # autodoc-process-docstring
    if len(lines) <= 2 and lines and _ALIAS_DOC.match(lines[0].strip()):
        lines.clear()


def setup(app):
    app.connect("doctree-read", _builtins_exact)
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-docstring", _drop_alias_docs)
    return {"version": "1", "parallel_read_safe": True}
