# SPDX-License-Identifier: LGPL-2.1-or-later
"""``<dev_dir>/mapper/<name>`` block nodes, for when udev does not make
them, and the control node, made as libdevmapper makes it when missing.

Every operation on a device's node works relative to one descriptor of
the mapper directory, opened with O_NOFOLLOW, and never follows a symlink
inside it: a device name (or a planted symlink) cannot make us write
outside that directory.
Names are checked again here (no '/', NUL, '.', '..', 'control') although
Control validated them, because ``reconcile`` also reads names off the
directory itself.

A wrong entry is replaced atomically: the new node is made under a
temporary name, given its mode and owner, then renamed over it.  A missing
one is made in place: until its owner and mode are set it is root:root with
the node mode narrowed by the umask, so no one the finished node would shut
out can open it meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat

from pydevmapper import validate
from pydevmapper._namedtuple import NamedTuple
from pydevmapper.errors import ValidationError
from pydevmapper.types import DevNo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

# As udev makes block nodes (root:disk 0660), so an entry looks the same
# whoever made it; Debian builds libdevmapper with this DM_DEVICE_MODE too
# (upstream's default is 0600).
NODE_MODE = 0o660
NODE_UID = 0  # DM_DEVICE_UID
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _disk_gid() -> int:
    import grp  # only when a node is made (see NodeDir.gid)

    try:
        return grp.getgrnam("disk").gr_gid
    except KeyError:
        return 6  # DM_DEVICE_GID: "disk" on most distributions


# Raises unless a name is a single, harmless entry of the mapper directory:
# not empty, no '/' or NUL, not '.', '..' or 'control'.  The check itself,
# not a wrapper around it: a resume and a remove each run it between ioctls.
check_node_name = validate.device_name


def _id(value: object, what: str) -> int:
    # uid_t and gid_t are 32 bits; (uid_t)-1 would mean "leave as is" to chown.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 0xFFFFFFFF:
        raise ValidationError(f"{what} must be an int from 0 to {0xFFFFFFFF - 1}, not {value!r}")
    return value


class NodeError(OSError):
    """A node could not be made or removed (the entry is not ours to touch, ...)."""


# The control node's number: misc major 10, minor 236 (fixed since Linux 2.6.36).
CONTROL_DEVNO = DevNo(10, 236)


def ensure_control_node(dev_dir: str) -> bool:
    """Make ``<dev_dir>/mapper/control`` if it is missing, as libdevmapper
    does before every open: a character node 10:236, mode 0600, in a
    directory made 0755 if need be (whatever the umask; no SELinux label is
    set, where libdevmapper sets one).  Opening it then loads dm-mod where
    the kernel loads modules on demand.  What stands there and is not the
    control node (a character node with another number, any other file)
    is removed first, as libdevmapper removes it.  Unlike the block nodes,
    this works on paths: the control node is not a device's name.

    Returns whether a node was made.  Raises ``NodeError`` with the errno,
    ``strerror`` naming the step (``"mknod failed: Permission denied"``)
    and the path as ``filename``.
    """
    mapper = os.path.join(dev_dir, "mapper")
    path = os.path.join(mapper, "control")
    wanted = os.makedev(*CONTROL_DEVNO)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _step_failed("stat", path, exc) from None
    if st is not None:
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == wanted:
            return False
        try:
            os.unlink(path)
        except OSError as exc:
            raise _step_failed("unlink", path, exc) from None
    if not os.path.isdir(mapper):
        try:
            os.makedirs(mapper, exist_ok=True)
            os.chmod(mapper, 0o755)
        except OSError as exc:
            raise _step_failed("mkdir", exc.filename or mapper, exc) from None
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, wanted)
        os.chmod(path, 0o600)
    except FileExistsError:
        # Made meanwhile (udevd, another process): where libdevmapper
        # fails, the open that follows finds out whether it is right.
        return False
    except OSError as exc:
        raise _step_failed("mknod", path, exc) from None
    return True


def _step_failed(step: str, path: str, exc: OSError) -> NodeError:
    # An OSError from a system call always has an errno.
    code: int = exc.errno  # type: ignore[assignment]
    return NodeError(code, f"{step} failed: {os.strerror(code)}", path)


class Reconciled(NamedTuple):
    """What ``NodeDir.reconcile`` (``Control.sync_nodes``) changed: the names given a new or
    corrected node, and the stale entries removed."""

    created: list[str]  # names given a (new or corrected) node
    removed: list[str]  # stale entries removed


class NodeDir:
    """The mapper directory under a device directory (``$DM_DEV_DIR`` or /dev)."""

    def __init__(self, dev_dir: str, *, uid: int = NODE_UID,
                 gid: int | None = None, mode: int = NODE_MODE) -> None:
        self.dev_dir = dev_dir
        self.path = os.path.join(dev_dir, "mapper")
        self.uid = _id(uid, "node owner (uid)")
        self._gid = None if gid is None else _id(gid, "node group (gid)")
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise ValidationError(f"node mode must be an int from 0 to 0o7777, not {mode!r}")
        self.mode = mode

    @property
    def gid(self) -> int:
        """The nodes' group: "disk", looked up when the first node is made.
        getgrnam reads /etc/group through NSS, which commands that make no
        node (version, info, ls, table, ...) should not pay for."""
        if self._gid is None:
            self._gid = _disk_gid()
        return self._gid

    # The directory is opened per call: it may be created (udevd, devtmpfs)
    # or replaced after a Control was opened, and holding it open would pin
    # a stale one.
    def _in_dir(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args, fd)`` with the directory open (made if missing).  One
        plain function, not a contextlib generator: this runs between the
        ioctls of every create and remove, where each extra layer of Python
        costs tens of microseconds under emulation."""
        try:
            fd = os.open(self.path, _DIR_FLAGS)
        except FileNotFoundError:
            try:
                os.mkdir(self.path, 0o755)
            except FileExistsError:
                pass
            fd = os.open(self.path, _DIR_FLAGS)
        try:
            return fn(*args, fd)
        finally:
            os.close(fd)

    def _lstat(self, name: str, fd: int) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _target(self, name: str, fd: int) -> DevNo | None:
        """The block device an entry is or points to (udev makes symlinks)."""
        try:
            st = os.stat(name, dir_fd=fd)  # read-only look through a symlink
        except OSError:
            return None  # absent or dangling
        if not stat.S_ISBLK(st.st_mode):
            return None
        return DevNo(os.major(st.st_rdev), os.minor(st.st_rdev))

    def lookup(self, name: str) -> DevNo | None:
        """The device ``mapper/<name>`` leads to, or None."""
        check_node_name(name)
        return self._in_dir(self._target, name)

    def ensure(self, name: str, devno: DevNo) -> bool:
        """Make ``mapper/<name>`` lead to ``devno``; True if anything changed.

        A correct entry (our node or udev's symlink) is left alone; a wrong
        block node or symlink is replaced; anything else there is an error.
        """
        check_node_name(name)
        return self._in_dir(self._ensure, name, devno)

    def _ensure(self, name: str, devno: DevNo, fd: int) -> bool:
        rdev = os.makedev(*devno)
        # The usual case is a missing entry: make the node under its own
        # name first and look only if something is there (see the module's
        # docstring for the moment before chown and chmod).  A stat first
        # would cost a syscall and a stat_result on every create, which
        # under emulation is as dear as the mknod itself.
        try:
            self._mknod(name, rdev, fd)
            return True
        except FileExistsError:
            pass
        st = self._lstat(name, fd)
        if st is None:  # removed meanwhile: make it again
            self._mknod(name, rdev, fd)
            return True
        if stat.S_ISBLK(st.st_mode):
            if st.st_rdev == rdev:
                return False
        elif not stat.S_ISLNK(st.st_mode):
            raise NodeError(errno.EEXIST, f"{self.path}/{name} exists and is not a "
                                          "block device node: not replacing it")
        elif self._target(name, fd) == devno:
            return False
        # A wrong node or symlink: a new node under a temporary name, renamed
        # over it, so the name never points nowhere.
        tmp = f".pydm-{os.urandom(6).hex()}"
        self._mknod(tmp, rdev, fd)
        try:
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            _unlink_quietly(tmp, fd)
            raise
        return True

    def _mknod(self, name: str, rdev: int, fd: int) -> None:
        """A block node with our owner and mode (removed again on failure)."""
        os.mknod(name, stat.S_IFBLK | self.mode, rdev, dir_fd=fd)
        try:
            os.chown(name, self.uid, self.gid, dir_fd=fd, follow_symlinks=False)
            # mknod's mode passed through the umask; the node is ours and new.
            os.chmod(name, self.mode, dir_fd=fd)
        except BaseException:
            _unlink_quietly(name, fd)
            raise

    def remove(self, name: str) -> bool:
        """Remove ``mapper/<name>`` if it is a node or symlink; True if removed."""
        check_node_name(name)
        return self._in_dir(self._remove, name)

    def _remove(self, name: str, fd: int) -> bool:
        st = self._lstat(name, fd)
        if st is None:
            return False
        if not (stat.S_ISBLK(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise NodeError(errno.EEXIST, f"{self.path}/{name} is not a block device "
                                          "node: not removing it")
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return False  # udev was faster
        return True

    def rename(self, old: str, new: str, devno: DevNo) -> None:
        """Move ``old``'s node to ``new`` (keeping its inode), or make ``new``."""
        check_node_name(old)
        check_node_name(new)
        self._in_dir(self._rename, old, new, devno)

    def _rename(self, old: str, new: str, devno: DevNo, fd: int) -> None:
        st = self._lstat(old, fd)
        if (st is not None and stat.S_ISBLK(st.st_mode)
                and st.st_rdev == os.makedev(*devno)
                and self._replaceable(new, fd)):
            os.rename(old, new, src_dir_fd=fd, dst_dir_fd=fd)
            return
        self._ensure(new, devno, fd)
        if self._target(old, fd) == devno or (st is not None and stat.S_ISLNK(st.st_mode)):
            self._remove(old, fd)

    def _replaceable(self, name: str, fd: int) -> bool:
        st = self._lstat(name, fd)
        return st is None or stat.S_ISBLK(st.st_mode) or stat.S_ISLNK(st.st_mode)

    def entries(self) -> dict[str, DevNo | None]:
        """Node-like entries (block nodes, symlinks) -> where they lead, or None."""
        return self._in_dir(self._entries)

    def _entries(self, fd: int) -> dict[str, DevNo | None]:
        found: dict[str, DevNo | None] = {}
        for entry in os.listdir(fd):
            if entry == "control" or entry.startswith(".pydm-"):
                continue
            st = self._lstat(entry, fd)
            if st is not None and (stat.S_ISBLK(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                found[entry] = self._target(entry, fd)
        return found

    def reconcile(self, devices: dict[str, DevNo]) -> Reconciled:
        """Make the directory match the kernel: ``devices`` is name -> number.

        Creates missing or wrong nodes, removes node-like entries for names
        the kernel does not know; leaves other files alone.
        """
        for name in devices:
            check_node_name(name)
        return self._in_dir(self._reconcile, devices)

    def _reconcile(self, devices: dict[str, DevNo], fd: int) -> Reconciled:
        created = [name for name, devno in sorted(devices.items())
                   if self._ensure(name, devno, fd)]
        removed: list[str] = []
        for entry in sorted(self._entries(fd)):
            if entry in devices:
                continue
            try:
                check_node_name(entry)
            except ValidationError:
                continue
            if self._remove(entry, fd):
                removed.append(entry)
        return Reconciled(created, removed)


def _unlink_quietly(name: str, fd: int) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except OSError:
        pass
