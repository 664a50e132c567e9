# SPDX-License-Identifier: LGPL-2.1-or-later
"""Node directory operations under a throwaway DM_DEV_DIR (no kernel needed).

Making block nodes needs CAP_MKNOD: those tests skip unless root.  The
traversal checks run either way: nothing may be written outside mapper/.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from pydevmapper.errors import ValidationError
from pydevmapper.nodes import NodeDir, NodeError, ensure_control_node
from pydevmapper.types import DevNo

needs_mknod = pytest.mark.skipif(os.geteuid() != 0, reason="mknod of block nodes needs root")

A = DevNo(254, 7)
B = DevNo(254, 8)


@pytest.fixture
def dev_dir(tmp_path):
    return str(tmp_path / "dev")


@pytest.fixture
def nodes(dev_dir):
    os.makedirs(os.path.join(dev_dir, "mapper"))
    return NodeDir(dev_dir)


def snapshot(root):
    """Every path under root (to prove nothing was written elsewhere)."""
    found = set()
    for base, dirs, files in os.walk(root):
        for entry in dirs + files:
            found.add(os.path.relpath(os.path.join(base, entry), root))
    return found


@needs_mknod
def test_ensure_makes_block_node_0660_root_disk(nodes):
    assert nodes.ensure("vol", A) is True
    st = os.lstat(os.path.join(nodes.path, "vol"))
    assert stat.S_ISBLK(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == A
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == 0 and st.st_gid == nodes.gid
    assert nodes.lookup("vol") == A
    # Idempotent, and no temporary entries are left behind.
    assert nodes.ensure("vol", A) is False
    assert sorted(os.listdir(nodes.path)) == ["vol"]


@needs_mknod
def test_ensure_ignores_umask(nodes):
    old = os.umask(0o777)
    try:
        nodes.ensure("vol", A)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(os.path.join(nodes.path, "vol")).st_mode) == 0o660


@needs_mknod
def test_ensure_replaces_wrong_node_and_dangling_symlink(nodes):
    nodes.ensure("vol", A)
    assert nodes.ensure("vol", B) is True
    assert nodes.lookup("vol") == B
    os.symlink("../nowhere", os.path.join(nodes.path, "dangling"))
    assert nodes.ensure("dangling", A) is True
    assert stat.S_ISBLK(os.lstat(os.path.join(nodes.path, "dangling")).st_mode)


@needs_mknod
def test_ensure_loses_a_race_to_a_correct_entry_gracefully(nodes, monkeypatch):
    # Another process (udev) makes the node just before our mknod.
    real_mknod = NodeDir._mknod
    calls = []

    def late_mknod(self, name, rdev, fd):
        calls.append(name)
        if len(calls) == 1:
            os.mknod(name, stat.S_IFBLK | 0o600, os.makedev(*A), dir_fd=fd)
        return real_mknod(self, name, rdev, fd)

    monkeypatch.setattr(NodeDir, "_mknod", late_mknod)
    assert nodes.ensure("vol", A) is False
    assert calls == ["vol"]
    assert sorted(os.listdir(nodes.path)) == ["vol"]


@needs_mknod
def test_ensure_remakes_an_entry_removed_while_it_looked(nodes, monkeypatch):
    # The entry that made mknod fail is gone by the time we look at it.
    nodes.ensure("vol", B)
    real_lstat = NodeDir._lstat

    def vanishing_lstat(self, name, fd):
        os.unlink(name, dir_fd=fd)
        monkeypatch.setattr(NodeDir, "_lstat", real_lstat)
        return None

    monkeypatch.setattr(NodeDir, "_lstat", vanishing_lstat)
    assert nodes.ensure("vol", A) is True
    assert nodes.lookup("vol") == A


@needs_mknod
def test_ensure_leaves_nothing_when_chown_fails(nodes, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(1, "refused")

    monkeypatch.setattr(os, "chown", refuse)
    with pytest.raises(PermissionError):
        nodes.ensure("vol", A)  # a new entry
    monkeypatch.undo()
    nodes.ensure("vol", B)
    monkeypatch.setattr(os, "chown", refuse)
    with pytest.raises(PermissionError):
        nodes.ensure("vol", A)  # replacing a wrong one: the old entry stays
    assert sorted(os.listdir(nodes.path)) == ["vol"]
    assert nodes.lookup("vol") == B


@needs_mknod
def test_ensure_keeps_a_correct_udev_style_symlink(nodes, dev_dir):
    os.mknod(os.path.join(dev_dir, "dm-7"), stat.S_IFBLK | 0o660, os.makedev(*A))
    link = os.path.join(nodes.path, "vol")
    os.symlink("../dm-7", link)
    assert nodes.ensure("vol", A) is False
    assert os.path.islink(link)
    assert nodes.ensure("vol", B) is True  # wrong device: replaced by a node
    assert not os.path.islink(link)
    assert stat.S_ISBLK(os.lstat(os.path.join(dev_dir, "dm-7")).st_mode)  # target untouched


@needs_mknod
def test_symlink_to_outside_is_replaced_not_followed(nodes, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("precious")
    os.symlink(str(outside), os.path.join(nodes.path, "vol"))
    nodes.ensure("vol", A)
    assert outside.read_text() == "precious"
    nodes.remove("vol")
    assert outside.read_text() == "precious"
    assert not os.path.lexists(os.path.join(nodes.path, "vol"))


def test_regular_file_and_directory_are_not_touched(nodes, tmp_path):
    with open(os.path.join(nodes.path, "file"), "w") as f:
        f.write("x")
    os.mkdir(os.path.join(nodes.path, "dir"))
    for name in ("file", "dir"):
        with pytest.raises(NodeError):
            nodes.ensure(name, A)
        with pytest.raises(NodeError):
            nodes.remove(name)
    assert os.path.isfile(os.path.join(nodes.path, "file"))
    assert os.path.isdir(os.path.join(nodes.path, "dir"))


@pytest.mark.parametrize("name", ["../evil", "..", ".", "a/b", "/abs", "control", "", "x\0y",
                                  "x" * 200])
def test_traversal_and_reserved_names_are_refused(nodes, tmp_path, name):
    before = snapshot(tmp_path)
    for op in (lambda: nodes.ensure(name, A), lambda: nodes.remove(name),
               lambda: nodes.lookup(name), lambda: nodes.rename(name, "ok", A),
               lambda: nodes.rename("ok", name, A), lambda: nodes.reconcile({name: A})):
        with pytest.raises(ValidationError):
            op()
    assert snapshot(tmp_path) == before


def test_mapper_dir_that_is_a_symlink_is_refused(dev_dir, tmp_path):
    os.mkdir(dev_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(str(elsewhere), os.path.join(dev_dir, "mapper"))
    with pytest.raises(OSError):
        NodeDir(dev_dir).ensure("vol", A)
    assert list(elsewhere.iterdir()) == []


def test_remove_of_missing_entry_is_fine(nodes):
    assert nodes.remove("absent") is False


@needs_mknod
def test_mapper_dir_is_created(dev_dir):
    os.mkdir(dev_dir)
    n = NodeDir(dev_dir)
    n.ensure("vol", A)
    assert stat.S_IMODE(os.stat(n.path).st_mode) == 0o755


@needs_mknod
def test_rename_keeps_the_inode(nodes):
    nodes.ensure("old", A)
    ino = os.lstat(os.path.join(nodes.path, "old")).st_ino
    nodes.rename("old", "new", A)
    assert not os.path.lexists(os.path.join(nodes.path, "old"))
    assert os.lstat(os.path.join(nodes.path, "new")).st_ino == ino
    # No old node (udev removed it, say): the new one is made.
    nodes.rename("gone", "other", B)
    assert nodes.lookup("other") == B


@needs_mknod
def test_reconcile_creates_missing_and_removes_stale_only(nodes):
    nodes.ensure("stale", A)
    nodes.ensure("wrong", A)
    with open(os.path.join(nodes.path, "notes.txt"), "w"):
        pass
    open(os.path.join(nodes.path, "control"), "w").close()  # stands in for the control node
    result = nodes.reconcile({"wrong": B, "new": DevNo(254, 9)})
    assert sorted(result.created) == ["new", "wrong"]
    assert result.removed == ["stale"]
    assert sorted(os.listdir(nodes.path)) == ["control", "new", "notes.txt", "wrong"]
    assert nodes.lookup("wrong") == B
    assert nodes.reconcile({"wrong": B, "new": DevNo(254, 9)}) == ([], [])


@needs_mknod
def test_odd_but_valid_names(nodes):
    for name in ("with space", "é" * 63, "-dash", ".hidden", "a\nb"):
        nodes.ensure(name, A)
        assert nodes.lookup(name) == A
        nodes.remove(name)
    assert os.listdir(nodes.path) == []


# -- the control node ------------------------------------------------------------

def _control(dev_dir):
    return os.stat(dev_dir / "mapper" / "control")


@needs_mknod
def test_a_missing_control_node_is_made_as_libdevmapper_makes_it(tmp_path):
    assert ensure_control_node(str(tmp_path))
    st = _control(tmp_path)
    assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (10, 236)
    assert stat.S_IMODE(os.stat(tmp_path / "mapper").st_mode) & 0o7022 == 0
    assert not ensure_control_node(str(tmp_path))  # there now: nothing to do


@needs_mknod
def test_a_control_node_with_another_number_is_replaced(tmp_path):
    (tmp_path / "mapper").mkdir()
    os.mknod(tmp_path / "mapper" / "control", stat.S_IFCHR | 0o600, os.makedev(10, 63))
    assert ensure_control_node(str(tmp_path))
    assert os.minor(_control(tmp_path).st_rdev) == 236


@needs_mknod
def test_a_file_at_the_control_path_is_replaced(tmp_path):
    (tmp_path / "mapper").mkdir()
    (tmp_path / "mapper" / "control").write_text("not a node\n")
    assert ensure_control_node(str(tmp_path))
    assert stat.S_ISCHR(_control(tmp_path).st_mode)


def test_the_directory_and_node_modes_ignore_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        try:
            ensure_control_node(str(tmp_path / "dev"))
        except NodeError as exc:
            assert os.geteuid() != 0 and exc.strerror.startswith("mknod failed: ")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "dev" / "mapper").st_mode) == 0o755
    if os.geteuid() == 0:
        assert stat.S_IMODE(_control(tmp_path / "dev").st_mode) == 0o600


def test_a_failed_step_is_named_with_its_path(tmp_path):
    (tmp_path / "mapper").write_text("not a directory")
    with pytest.raises(NodeError) as caught:
        ensure_control_node(str(tmp_path))
    assert caught.value.errno == errno.ENOTDIR
    assert caught.value.strerror == "stat failed: Not a directory"
    assert caught.value.filename == str(tmp_path / "mapper" / "control")
