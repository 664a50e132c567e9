# SPDX-License-Identifier: LGPL-2.1-or-later
"""Who makes ``/dev/mapper`` match the kernel after a command that raises a
uevent (resume, remove, rename), and how the caller waits for it.

udev owns ``/dev/mapper`` while it runs: with udev sync the command carries
a libdevmapper cookie that udev's rules release once they are done, and the
command waits for it (up to ``timeout``), or joins a caller's
``udev.Transaction`` and does not wait.  After that, and always without
udev, the library checks the entry and makes, renames or removes a block
node itself - the fallback libdevmapper has too, e.g. for a ``dev_dir``
udev does not manage.  The one exception is a transaction in udev's own
directory, where the uevents may still be queued: there the nodes are
udev's alone (libdevmapper's DISABLE_LIBRARY_FALLBACK).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pydevmapper import udev
from pydevmapper._dm import lib
from pydevmapper.nodes import NodeDir
from pydevmapper.types import DevNo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.channel import Reply


class UeventPolicy:
    """The udev sync and node decisions of one ``Control`` (see the module doc).

    ``sync``: None decides on first use (udevd runs and the notify rules
    exist).  ``rules=False`` tells udev's DM and subsystem rules to keep off
    (dmsetup's ``--noudevrules``): the library makes the nodes, still
    waiting for the cookie when syncing.  ``real``: the control node is the
    kernel's (the unit tier's stand-in gets neither nodes nor cookies unless
    asked for them explicitly).  ``on_timeout``: called with the
    ``UdevTimeoutError`` instead of raising it, when udev does not answer
    in time (the command itself succeeded).
    """

    def __init__(self, nodes: NodeDir, *, sync: bool | None, timeout: float,
                 transaction: udev.Transaction | None, rules: bool, real: bool,
                 on_timeout: Callable[[udev.UdevTimeoutError], None] | None = None) -> None:
        self.nodes = nodes
        self.on_timeout = on_timeout
        self._sync = sync if real or sync is not None else False
        self.timeout = timeout
        self.transaction = transaction
        self.rules = rules
        self.real = real
        # udev populates /dev only; resolved once, not per command.
        self._udevs_dir = os.path.realpath(nodes.dev_dir) == "/dev"

    @property
    def sync(self) -> bool:
        """Whether commands wait for udev: as given, else decided on first use (udevd runs and the
        notify rules exist)."""
        if self._sync is None:
            self._sync = udev.sync_available()
        return self._sync

    def udev_makes_nodes(self) -> bool:
        """Whether udev makes the /dev/mapper entries: udev sync, udev's rules not turned off, and
        the device directory is udev's /dev."""
        return self.sync and self.rules and self._udevs_dir

    def library_makes_nodes(self) -> bool:
        """Whether the library checks the node after a command."""
        return self.real and not (self.transaction is not None and self.udev_makes_nodes())

    def check_create(self, command: str, name: str) -> None:
        """Before a create whose resume will join the transaction: fail now,
        with nothing made, if it could not."""
        if self.transaction is not None and self.sync:
            self.transaction.check(command, name)

    def run(self, command: str, device: str, send: Callable[[int], Reply]) -> Reply:
        """Send a command that may raise a uevent: ``send(event_nr)`` issues it
        with the udev flags and cookie this policy puts in ``event_nr``.

        Without udev sync: flags only, telling udev not to touch /dev/mapper
        (as libdevmapper does when it makes the nodes itself).  With a
        transaction: its cookie, counted before the command and given back
        if no uevent comes; no wait.  Else a cookie of our own, waited for
        here, whose semaphore never outlives this call.
        """
        flags = udev.PRIMARY_SOURCE
        sync = self.sync
        if not (sync and self.rules):
            flags |= udev.DISABLE_DM_RULES | udev.DISABLE_SUBSYSTEM_RULES
        if not sync:
            return send(flags << udev.FLAGS_SHIFT)
        tx = self.transaction
        if tx is not None:
            if self.udev_makes_nodes():
                flags |= udev.DISABLE_LIBRARY_FALLBACK
            tx.join(command, device)
            try:
                reply = send(flags << udev.FLAGS_SHIFT | tx.base)
            except BaseException:
                tx.leave()
                raise
            if not reply.flags & lib.DM_UEVENT_GENERATED_FLAG:
                tx.leave()
            return reply
        with udev.cookie(flags) as ck:
            reply = send(ck.value)
            if reply.flags & lib.DM_UEVENT_GENERATED_FLAG:
                try:
                    ck.wait(self.timeout, command, device)
                except udev.UdevTimeoutError as exc:
                    if self.on_timeout is None:
                        raise
                    self.on_timeout(exc)
            return reply

    # -- the library's part after a command ------------------------------------

    def created(self, name: str, devno: DevNo) -> None:
        """After DM_DEV_CREATE: libdevmapper without udev makes the node at
        once; with udev it comes at the first resume (a device without a
        table has no disk, so raises no uevent before)."""
        if self.real and not self.udev_makes_nodes():
            self.nodes.ensure(name, devno)

    def resumed(self, name: str, devno: DevNo) -> None:
        """After a resume: make or correct the node, unless it is udev's (see
        ``library_makes_nodes``)."""
        if self.library_makes_nodes():
            self.nodes.ensure(name, devno)

    def removed(self, name: str | None) -> None:
        """After a remove: remove the node of ``name`` (None: not known), unless it is udev's."""
        if name and self.library_makes_nodes():
            self.nodes.remove(name)

    def renamed(self, old: str, new: str, devno: DevNo) -> None:
        """After a rename: move the node from ``old`` to ``new``, unless it is udev's."""
        if old != new and self.library_makes_nodes():
            self.nodes.rename(old, new, devno)
