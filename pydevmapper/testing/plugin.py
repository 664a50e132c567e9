# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pytest plugin: markers, fixtures and the end-of-session sweep.

pytest loads it in every run where pydevmapper is installed, so it keeps to
names of its own (the ``dm_`` prefix) and does nothing until a test uses
one of them: no kernel is asked, no module loaded and the binding not
imported before then, and a binding that cannot be imported fails or skips
only the tests that use the kit.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from pydevmapper.testing import kernel

if TYPE_CHECKING:
    from typing import Any, NoReturn, TypedDict

    from pydevmapper.control import Control
    from pydevmapper.device import Device
    from pydevmapper.loopdev import LoopDevice
    from pydevmapper.tables import Table

    class _State(TypedDict):
        prefix: str | None
        loop_dir: str | None
        reason: str | None  # why root tests cannot run; "unchecked" until asked
        used: bool
        leaks: list[str]
        module_loaded_here: bool

ROOT_MARKER = "dm_root"
BASIC_MARKER = "dm_needs_basic_target"
_MARKERS = (
    f"{ROOT_MARKER}: needs root and a kernel with device-mapper "
    "(skips, or fails under PYDM_REQUIRE_KERNEL=1)",
    f"{BASIC_MARKER}: needs the basic_target module (PYDM_BASIC_TARGET_KO)",
)
BASIC_TARGET_ENV = "PYDM_BASIC_TARGET_KO"

_state: _State = {"prefix": None, "loop_dir": None, "reason": "unchecked", "used": False,
          "leaks": [], "module_loaded_here": False}


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)


def _unavailable() -> str | None:
    if _state["reason"] == "unchecked":
        _state["reason"] = kernel.kernel_unavailable_reason()
    return _state["reason"]


def _skip_or_fail(reason: str) -> NoReturn:
    if kernel.require_kernel():
        pytest.fail(f"{reason} (and {kernel.REQUIRE_ENV} is set: this tier must run)",
                    pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(ROOT_MARKER) or item.get_closest_marker(BASIC_MARKER):
        reason = _unavailable()
        if reason:
            _skip_or_fail(reason)
        _state["used"] = True
    if item.get_closest_marker(BASIC_MARKER) and not os.environ.get(BASIC_TARGET_ENV):
        _skip_or_fail(f"{BASIC_TARGET_ENV} does not name a basic_target.ko for this kernel")


# -- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="session")
def dm_prefix() -> str:
    """The session's device-name prefix; the sweep removes what carries it."""
    if _state["prefix"] is None:
        _state["prefix"] = f"pydmt-{secrets.token_hex(3)}-"
    return _state["prefix"]  # type: ignore[return-value]  # set above: mypy does not narrow it


@pytest.fixture(scope="session")
def dm_control() -> Iterator[Control]:
    """A Control for the session (root tests only)."""
    reason = _unavailable()
    if reason:
        _skip_or_fail(reason)
    _state["used"] = True  # the sweep runs, marker or not
    from pydevmapper.control import Control

    ctl = Control()
    yield ctl
    ctl.close()


_counter = itertools.count()


@pytest.fixture
def dm_name(dm_prefix: str, request: pytest.FixtureRequest) -> str:
    """A device name unique to this test, under the session prefix."""
    # Test ids may hold anything (parameters with '/'); names may not.
    # pytest leaves FixtureRequest.node untyped.
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    return f"{dm_prefix}{next(_counter)}-{stem}"[:127]


def _loop_dir() -> str:
    if _state["loop_dir"] is None:
        _state["loop_dir"] = tempfile.mkdtemp(prefix="pydmt-loop-")
    return _state["loop_dir"]  # type: ignore[return-value]  # set above: mypy does not narrow it


@pytest.fixture
def dm_make_loop() -> Iterator[Callable[..., LoopDevice]]:
    """Factory: ``dm_make_loop(size_mib=64)`` attaches a loop device over a sparse file."""
    _state["used"] = True  # the sweep looks for loop devices left behind
    from pydevmapper import loopdev

    made: list[loopdev.LoopDevice] = []

    def factory(size_mib: int = 64, **kwargs: bool) -> loopdev.LoopDevice:
        fd, path = tempfile.mkstemp(dir=_loop_dir(), suffix=".img")
        try:
            os.ftruncate(fd, size_mib * 1024 * 1024)
        finally:
            os.close(fd)
        loop = loopdev.attach(path, **kwargs)
        made.append(loop)
        return loop

    yield factory
    errors: list[OSError] = []
    for loop in reversed(made):
        try:
            loop.detach()
        except OSError as exc:
            errors.append(exc)
        try:
            os.unlink(loop.backing_file)
        except OSError:
            pass
    if errors:
        raise errors[0]


@pytest.fixture
def dm_loop_device(dm_make_loop: Callable[..., LoopDevice]) -> LoopDevice:
    """One 64 MiB loop device over a sparse file."""
    return dm_make_loop(64)


@pytest.fixture
def dm_make_device(dm_control: Control, dm_prefix: str) -> Iterator[Callable[..., Device]]:
    """Factory: ``dm_make_device(table, name=None, **kw)`` -> Device, removed after the test."""
    made: list[Device] = []
    names = (f"{dm_prefix}dev{next(_counter)}" for _ in itertools.count())

    def factory(table: Table | str, name: str | None = None, **kwargs: Any) -> Device:
        dev = dm_control.create_device(name or next(names), table, **kwargs)
        made.append(dev)
        return dev

    yield factory
    from pydevmapper.errors import DeviceNotFoundError

    for dev in reversed(made):
        try:
            # udev workers probe new devices; under emulation that is slow.
            dm_control.remove(dev.devno, retry=30.0)
        except DeviceNotFoundError:
            pass


@pytest.fixture(scope="session")
def dm_basic_target() -> Iterator[str]:
    """Loads basic_target (from $PYDM_BASIC_TARGET_KO) for the session; unloads it after.

    Yields the module's path.  Tests using it should carry the
    ``dm_needs_basic_target`` marker so a missing module skips (or fails) early.
    """
    reason = _unavailable()
    if reason:
        _skip_or_fail(reason)
    path = os.environ.get(BASIC_TARGET_ENV)
    if not path:
        _skip_or_fail(f"{BASIC_TARGET_ENV} is not set")
    from pydevmapper import kmod

    loaded_here = False
    if not kmod.is_loaded("basic_target"):
        kmod.load_module(path)
        loaded_here = True
        _state["module_loaded_here"] = True
    yield path
    if loaded_here:
        # Leftover devices would pin the module: sweep them first.
        _sweep_devices()
        try:
            kmod.unload_module("basic_target")
        except kmod.ModuleError as exc:
            _state["leaks"].append(f"module basic_target ({exc})")


# -- the sweep -----------------------------------------------------------------

def _sweep_devices() -> None:
    """Remove devices carrying the session prefix; record each as a leak."""
    if not _state["prefix"] or _unavailable():
        return
    leaks = _state["leaks"]
    try:
        from pydevmapper.control import Control
        from pydevmapper.testing import sweep

        with Control() as ctl:
            devices = sweep.leftover_devices(ctl, _state["prefix"])
            leaks += [f"device {n}" for n in devices]
            stuck = sweep.remove_devices(ctl, devices) if devices else []
            leaks += [f"device {n} (could not be removed)" for n in stuck]
    except Exception as exc:  # noqa: BLE001 - the sweep must not hide the run's own result
        leaks.append(f"sweep failed: {exc}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _state["used"]:
        _cleanup_loop_dir()
        return
    _sweep_devices()
    leaks = _state["leaks"]
    if _state["loop_dir"]:
        from pydevmapper.testing import sweep

        loops = sweep.leftover_loops(_state["loop_dir"])
        leaks += [f"loop device {p}" for p in loops]
        leaks += [f"loop device {p} (could not be detached)" for p in sweep.detach_loops(loops)]
    _cleanup_loop_dir()
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "pydevmapper sweep: the session leaked " + ", ".join(leaks)
        if reporter is not None:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _cleanup_loop_dir() -> None:
    if _state["loop_dir"]:
        shutil.rmtree(_state["loop_dir"], ignore_errors=True)
        _state["loop_dir"] = None
