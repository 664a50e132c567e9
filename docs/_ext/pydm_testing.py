# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pytest plugin's markers and fixtures, read from the plugin itself.

``.. pytest-plugin:: pydevmapper.testing.plugin`` lists every marker the
plugin registers and every fixture it defines, with its scope, the fixtures
it uses and its docstring, so the page follows the plugin as fixtures are
added or renamed.  Each becomes a ``marker`` or ``fixture`` object that
prose refers to as ``{fixture}`name``` / ``{marker}`name```: a reference
to a name the plugin no longer has is a warning, and the build fails.

A fixture without a docstring is a warning too.
"""

from __future__ import annotations

import importlib
import inspect

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

log = logging.getLogger(__name__)


def _fixture_info(obj: object) -> tuple[str, str, object] | None:
    """(name, scope, function) of a fixture definition, or None."""
    marker = getattr(obj, "_fixture_function_marker", None)  # pytest 8.4+
    if marker is not None:
        return obj.name, marker.scope, obj._get_wrapped_function()
    marker = getattr(obj, "_pytestfixturefunction", None)  # older pytest
    if marker is not None:
        return marker.name or obj.__name__, marker.scope, obj
    return None


def fixtures(module) -> list[tuple[str, str, list[str], str]]:
    """(name, scope, fixtures it uses, docstring) for each fixture, in source order."""
    found = []
    for value in vars(module).values():
        info = _fixture_info(value)
        if info is None:
            continue
        name, scope, function = info
        uses = [p for p in inspect.signature(function).parameters if p != "request"]
        line = inspect.getsourcelines(function)[1]
        found.append((line, name, scope, uses, inspect.getdoc(function) or ""))
    return [entry[1:] for entry in sorted(found)]


class _Recorder:
    """Stands in for pytest's Config in ``pytest_configure``: keeps the markers."""

    def __init__(self) -> None:
        self.markers: list[str] = []

    def addinivalue_line(self, name: str, line: str) -> None:
        if name == "markers":
            self.markers.append(line)


def markers(module) -> list[tuple[str, str]]:
    """(name, description) of each marker the plugin registers."""
    recorder = _Recorder()
    module.pytest_configure(recorder)
    return [tuple(part.strip() for part in line.split(":", 1)) for line in recorder.markers]


class PytestPlugin(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module(self.arguments[0])
        lines = ["**Markers**", ""]
        for name, description in markers(module):
            lines += [f".. marker:: {name}", "", f"   {description}", ""]
        lines += ["**Fixtures**", ""]
        for name, scope, uses, doc in fixtures(module):
            if not doc:
                log.warning("fixture without a docstring: %s", name, location=self.get_location())
            used = ", ".join(f":fixture:`{u}`" for u in uses)
            lines += [f".. fixture:: {name}", ""]
            lines += [f"   *{scope} scope*" + (f"; uses {used}" if used else ""), ""]
            lines += [f"   {line}" for line in doc.splitlines()] + [""]
        if type(self.state).__module__.startswith("myst_parser"):
            # On a Markdown page nested content is read as Markdown: fence it.
            lines = ["```{eval-rst}", *lines, "```"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.arguments[0]), self.content_offset, container)
        return container.children


def setup(app):
    app.add_object_type("fixture", "fixture", objname="pytest fixture",
                        indextemplate="pair: %s; pytest fixture")
    app.add_object_type("marker", "marker", objname="pytest marker",
                        indextemplate="pair: %s; pytest marker")
    app.add_directive("pytest-plugin", PytestPlugin)
    return {"version": "1", "parallel_read_safe": True}
