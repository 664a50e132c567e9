# SPDX-License-Identifier: LGPL-2.1-or-later
"""The split of a udev boot's root tests (tests/root/conftest.py,
``$PYDM_UDEV_SHARE``): every test marked udev in each share, every other
test in exactly one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.root import conftest


class _Item:
    def __init__(self, nodeid: str, udev: bool) -> None:
        self.nodeid, self.udev = nodeid, udev

    def get_closest_marker(self, name: str) -> object:
        return True if name == "udev" and self.udev else None


def _share(monkeypatch: pytest.MonkeyPatch, value: str, items: list[_Item]) -> tuple[list[str], list[str]]:
    monkeypatch.setenv(conftest.UDEV_SHARE_ENV, value)
    monkeypatch.setattr(conftest.udev, "udev_running", lambda: True)
    deselected: list[str] = []
    config = SimpleNamespace(hook=SimpleNamespace(
        pytest_deselected=lambda items: deselected.extend(i.nodeid for i in items)))
    kept = list(items)
    conftest.pytest_collection_modifyitems(config, kept)
    assert config.pydm_udev_share == (*conftest.udev_share(value), len(deselected))
    return [i.nodeid for i in kept], deselected


ITEMS = [_Item(f"tests/root/test_x.py::test_{i}", udev=i % 7 == 0) for i in range(200)]


def test_the_shares_cover_every_test_and_each_runs_the_udev_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    marked = {i.nodeid for i in ITEMS if i.udev}
    for n in (1, 2, 3):
        seen: list[str] = []
        for k in range(1, n + 1):
            kept, deselected = _share(monkeypatch, f"{k}/{n}", ITEMS)
            assert marked <= set(kept) and not marked & set(deselected)
            assert sorted(kept + deselected) == sorted(i.nodeid for i in ITEMS)
            seen += [nodeid for nodeid in kept if nodeid not in marked]
        # Each of the others in exactly one share, and the shares near even.
        assert sorted(seen) == sorted(i.nodeid for i in ITEMS if not i.udev)
        if n == 2:
            assert 60 < len(_share(monkeypatch, "1/2", ITEMS)[1]) < 110


def test_without_the_variable_nothing_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(conftest.UDEV_SHARE_ENV, raising=False)
    items = list(ITEMS)
    conftest.pytest_collection_modifyitems(SimpleNamespace(), items)
    assert items == ITEMS


@pytest.mark.parametrize("value", ["0/2", "3/2", "1", "a/b", "1/0", "/2"])
def test_a_bad_share_is_a_usage_error(value: str) -> None:
    with pytest.raises(pytest.UsageError, match="k/n"):
        conftest.udev_share(value)


def test_a_share_without_udev_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(conftest.UDEV_SHARE_ENV, "1/2")
    monkeypatch.setattr(conftest.udev, "udev_running", lambda: False)
    with pytest.raises(pytest.UsageError, match="udevd does not run"):
        conftest.pytest_collection_modifyitems(SimpleNamespace(), list(ITEMS))
