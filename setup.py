# SPDX-License-Identifier: LGPL-2.1-or-later
"""Build hook: compiles the cffi binding against the installed kernel headers.

Everything else (metadata, dependencies, entry points) lives in pyproject.toml.
"""

from setuptools import setup

setup(cffi_modules=["build_support/dm_build.py:ffibuilder"])
