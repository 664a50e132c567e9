# SPDX-License-Identifier: LGPL-2.1-or-later
"""``command-output``: a command's output, run when the docs are built.

    ```{command-output} python -m pydevmapper.sandbox run --help
    ```

runs the command (``python`` is the interpreter building the docs, with
the checkout first on its path) and shows what it printed, so a page never
shows a stale ``--help``.  A command that fails is a warning, and the build
fails on it.  Only for commands that need nothing but the checkout: no
root, no kernel, no network.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

log = logging.getLogger(__name__)


class CommandOutput(SphinxDirective):
    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        argv = shlex.split(self.arguments[0])
        shown = " ".join(argv)
        if argv[0] == "python":
            argv[0] = sys.executable
        repo = os.path.dirname(self.env.srcdir)
        env = dict(os.environ, COLUMNS="80", PYTHONPATH=os.pathsep.join(
            [repo, *filter(None, [os.environ.get("PYTHONPATH")])]))
        run = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True,
                             timeout=60, check=False)
        if run.returncode != 0:
            log.warning("%s exited %s: %s", shown, run.returncode, run.stderr.strip(),
                        location=self.get_location())
        text = f"$ {shown}\n{run.stdout}"
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app):
    app.add_directive("command-output", CommandOutput)
    return {"version": "1", "parallel_read_safe": True}
