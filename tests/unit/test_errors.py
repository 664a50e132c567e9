# SPDX-License-Identifier: LGPL-2.1-or-later
"""errno -> typed error mapping, and what the errors carry."""

from __future__ import annotations

import errno
import pickle

import pytest

from pydevmapper.errors import (
    DeviceBusyError,
    DeviceExistsError,
    DeviceMapperUnavailableError,
    DeviceNotFoundError,
    DMError,
    DMPermissionError,
    InvalidTableError,
    UnsupportedError,
    error_for,
)


@pytest.mark.parametrize(
    "err, command, cls",
    [
        (errno.ENXIO, "DM_DEV_STATUS", DeviceNotFoundError),
        (errno.ENXIO, "DM_TABLE_LOAD", DeviceNotFoundError),
        (errno.EBUSY, "DM_DEV_CREATE", DeviceExistsError),
        (errno.EBUSY, "DM_DEV_RENAME", DeviceExistsError),
        (errno.EBUSY, "DM_DEV_REMOVE", DeviceBusyError),
        (errno.EBUSY, "DM_DEV_SUSPEND", DeviceBusyError),
        (errno.EBUSY, "DM_REMOVE_ALL", DeviceBusyError),
        (errno.EPERM, "DM_VERSION", DMPermissionError),
        (errno.EACCES, "DM_DEV_CREATE", DMPermissionError),
        (errno.EPERM, "open", DMPermissionError),
        (errno.EINVAL, "DM_TABLE_LOAD", InvalidTableError),
        (errno.EINVAL, "DM_DEV_CREATE", DMError),
        (errno.EINVAL, "DM_TARGET_MSG", DMError),
        (errno.ENOMEM, "DM_TABLE_LOAD", DMError),
        (errno.EEXIST, "DM_DEV_CREATE", DMError),
    ],
)
def test_error_for_picks_class(err, command, cls):
    exc = error_for(err, command, "vol")
    assert type(exc) is cls
    assert isinstance(exc, DMError) and isinstance(exc, OSError)


def test_permission_error_is_also_builtin_permission_error():
    exc = error_for(errno.EPERM, "DM_VERSION")
    assert isinstance(exc, PermissionError)
    assert "CAP_SYS_ADMIN" in str(exc)
    assert "CAP_SYS_ADMIN" in exc.strerror
    assert isinstance(error_for(errno.EACCES, "DM_VERSION"), PermissionError)


def test_exists_error_says_so():
    exc = error_for(errno.EBUSY, "DM_DEV_CREATE", "vol")
    assert "already exists" in str(exc)
    assert exc.errno == errno.EBUSY


@pytest.mark.parametrize("err", [errno.ENXIO, errno.EBUSY, errno.EPERM, errno.EINVAL, errno.EIO])
def test_errors_carry_fields(err):
    exc = error_for(err, "DM_TABLE_LOAD", "253:4", "device-mapper: table: 253:4: linear: Device lookup failed")
    assert exc.errno == err
    assert exc.args[0] == err
    assert exc.command == "DM_TABLE_LOAD"
    assert exc.device == "253:4"
    assert exc.kernel_message == "device-mapper: table: 253:4: linear: Device lookup failed"
    text = str(exc)
    assert "DM_TABLE_LOAD" in text
    assert "253:4" in text
    assert "Device lookup failed" in text
    assert f"Errno {err}" in text


def test_str_without_device_or_kernel_message():
    exc = error_for(errno.EIO, "DM_VERSION")
    assert exc.device is None and exc.kernel_message is None
    assert str(exc).startswith("DM_VERSION: ")
    assert "kernel:" not in str(exc)


def test_default_strerror_is_os_strerror():
    import os

    exc = error_for(errno.ENXIO, "DM_DEV_STATUS", "vol")
    assert exc.strerror == os.strerror(errno.ENXIO)
    assert os.strerror(errno.ENXIO) in str(exc)


@pytest.mark.parametrize(
    "exc",
    [
        error_for(errno.ENXIO, "DM_DEV_STATUS", "vol"),
        error_for(errno.EBUSY, "DM_DEV_CREATE", "uuid:LVM-x"),
        error_for(errno.EBUSY, "DM_DEV_REMOVE", "253:0"),
        error_for(errno.EPERM, "DM_VERSION"),
        error_for(errno.EINVAL, "DM_TABLE_LOAD", "vol", "device-mapper: table: bad"),
        error_for(errno.EIO, "DM_TARGET_MSG", "vol"),
        UnsupportedError(errno.ENOTSUP, "DM_DEV_ARM_POLL", None, None, "needs 4.37.0"),
        DeviceMapperUnavailableError(errno.ENOENT, "open", "/dev/mapper/control", None,
                                     "no control node"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickle_round_trip(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert (back.errno, back.strerror, back.command, back.device, back.kernel_message) == (
        exc.errno, exc.strerror, exc.command, exc.device, exc.kernel_message)
    assert str(back) == str(exc)


def test_catchable_as_builtin_oserror_subclasses_by_errno():
    with pytest.raises(OSError) as info:
        raise error_for(errno.ENXIO, "DM_DEV_STATUS", "vol")
    assert info.value.errno == errno.ENXIO
