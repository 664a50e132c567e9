# SPDX-License-Identifier: LGPL-2.1-or-later
"""A test kit for code that drives device-mapper.

Installed with pydevmapper as a pytest plugin (entry point ``pydevmapper``).
It gives:

* the ``dm_root`` marker: such tests skip, with the reason, unless the
  process is root on a kernel with device-mapper; with
  ``PYDM_REQUIRE_KERNEL=1`` in the environment they fail instead, so a tier
  that must run can't pass by skipping;
* the ``dm_needs_basic_target`` marker, for tests of the companion module;
* fixtures: ``dm_control``, ``dm_name`` (a unique name per test),
  ``dm_make_loop`` / ``dm_loop_device`` (loop devices over sparse files),
  ``dm_make_device`` (devices removed after the test), ``dm_basic_target``
  (the companion module, loaded once per session);
* a sweep at the end of the session that removes every device and loop device
  the run made, even after failures, and fails the run if any was left.

Every name is the kit's own (``dm_``), and nothing touches the kernel or
imports the binding until a test uses one of them, so the plugin leaves
other projects' tests alone.

Every device name the kit hands out starts with the session's prefix
(``dm_prefix``), which is how the sweep finds leftovers.
"""

from pydevmapper.testing.kernel import kernel_unavailable_reason, require_kernel

__all__ = ["kernel_unavailable_reason", "require_kernel"]
