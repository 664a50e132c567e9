# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sphinx configuration for the pydevmapper documentation.

Built by scripts/build-docs.sh (html and the pydmsetup(8) man page, with
warnings as errors).  autodoc imports the package from the checkout this
file sits in, so the reference always describes the code beside it.
"""

from __future__ import annotations

import os
import re
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(DOCS)
sys.path.insert(0, REPO)  # the checkout's package, not an installed copy
sys.path.insert(0, os.path.join(DOCS, "_ext"))


def _version() -> str:
    """The release: the installed distribution's metadata, else pyproject.toml."""
    from importlib import metadata

    try:
        return metadata.version("pydevmapper")
    except metadata.PackageNotFoundError:
        pass
    with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:
        found = re.search(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.MULTILINE | re.DOTALL)
        if found:
            return found.group(1)
    else:
        version = tomllib.loads(text).get("project", {}).get("version")
        if version:
            return version
    # A dynamic version: the package's own.
    import pydevmapper

    return pydevmapper.__version__


project = "pydevmapper"
author = "the pydevmapper authors"
copyright = "the pydevmapper authors; LGPL-2.1-or-later"
release = _version()
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "apicheck",
    "pydm_refs",
    "pydm_testing",
    "pydm_commands",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"pydevmapper {release}"
html_static_path: list[str] = []

# -- the API reference -----------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True}
add_module_names = False  # "Control(...)", not "pydevmapper.control.Control(...)"

# What is public, for apicheck (docs/_ext/apicheck.py): the build fails on a
# public name without a docstring or on no page.  A module with __all__
# exports that; any other its classes and functions not named _private.
apicheck_modules = [
    "pydevmapper",
    "pydevmapper.control",
    "pydevmapper.device",
    "pydevmapper.tables",
    "pydevmapper.types",
    "pydevmapper.flags",
    "pydevmapper.errors",
    "pydevmapper.api",
    "pydevmapper.operations",
    "pydevmapper.events",
    "pydevmapper.deptree",
    "pydevmapper.stacks",
    "pydevmapper.uevents",
    "pydevmapper.composites.segments",
    "pydevmapper.composites.thin",
    "pydevmapper.composites.snapshot",
    "pydevmapper.composites.cache",
    "pydevmapper.log",
    "pydevmapper.udev",
    "pydevmapper.nodes",
    "pydevmapper.uevent_policy",
    "pydevmapper.targets",
    *(f"pydevmapper.targets.{family}" for family in (
        "basic", "faults", "snapshot", "thin", "cache", "raid", "crypt", "multipath", "vdo")),
    "pydevmapper.testing",
    "pydevmapper.testing.kernel",
    "pydevmapper.loopdev",
    "pydevmapper.sandbox",
]

# Every cross-reference must resolve (docs/_ext/pydm_refs.py resolves the
# annotations autodoc leaves unqualified); these cannot, and why:
nitpicky = True
nitpick_ignore = [
    # The standard library's own documentation is not linked: intersphinx
    # would fetch its inventory over the network, and the build is offline.
    ("py:class", "collections.abc.Callable"),
    ("py:class", "collections.abc.Iterable"),
    ("py:class", "collections.abc.Iterator"),
    ("py:class", "collections.abc.Mapping"),
    ("py:class", "collections.abc.Sequence"),
    ("py:class", "pathlib.Path"),
    ("py:class", "os.PathLike"),
    ("py:class", "Logger"),  # logging.Logger, named as log.py imports it
    # Names that exist for the type checkers only (under TYPE_CHECKING):
    # Params.parse/Status.parse return the class they are called on (P, S);
    # Version is tuple[int, int, int], the interface version.
    ("py:class", "P"),
    ("py:class", "S"),
    ("py:class", "Version"),
    # stacks.TableSpec: what a declared device's table may be, as
    # DeviceSpec's docstring says.
    ("py:class", "TableSpec"),
    # composites.segments.Segment, as the composite modules import it.
    ("py:class", "Segment"),
    # mangling.Mode is Literal["none", "auto", "hex"], as the module says.
    ("py:class", "Mode"),
    ("py:class", "logging.Logger"),
    # Internal: the kernel-log cursor an operation passes to the steps of
    # Control.create/load/resume; pydevmapper.kmsg is not public API.
    ("py:class", "kmsg.KmsgCursor"),
    ("py:class", "pydevmapper.kmsg.KmsgCursor"),
    # Internal: the channel's decoded reply, which UeventPolicy.run hands
    # back from the send function Control gives it; pydevmapper.channel is
    # not public API.
    ("py:class", "Reply"),
]

# -- the man page ------------------------------------------------------------

man_pages = [
    ("man/pydmsetup", "pydmsetup",
     "low level logical volume management, as dmsetup, in Python", [author], 8),
]
man_show_urls = False
