# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures of the unit tier: the fake kernel behind a regular file."""

from __future__ import annotations

import pytest
from fake_kernel import FakeCursor, FakeKernel, LibProxy

from pydevmapper import channel
from pydevmapper.control import Control


@pytest.fixture
def kernel(monkeypatch) -> FakeKernel:
    fake = FakeKernel()
    monkeypatch.setattr(channel, "lib", LibProxy(fake.ioctl))
    monkeypatch.setattr(FakeCursor, "lines", [])
    monkeypatch.setattr(channel.kmsg, "KmsgCursor", FakeCursor)
    return fake


@pytest.fixture
def ctl(kernel, tmp_path):
    path = tmp_path / "control"
    path.write_bytes(b"")
    with Control(path=str(path)) as c:
        yield c
