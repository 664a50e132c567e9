# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydevmapper: Linux device-mapper from Python, straight over the DM ioctls::

    import pydevmapper as dm

    with dm.Control() as ctl:
        with ctl.create_device("demo", dm.Table.single(2048, "zero")) as dev:
            print(dev.info(), dev.table())

Names are imported on first use, so ``import pydevmapper`` stays cheap for
scripts that touch one corner of it.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"

# public name -> defining module
_EXPORTS = {
    "Control": "control", "Device": "device", "default_dev_dir": "control",
    "Table": "tables", "Target": "tables", "TargetStatus": "tables",
    "TableSyntaxError": "tables", "parse_targets": "tables",
    "DeviceInfo": "types", "DevNo": "types", "Name": "types", "Uuid": "types",
    "ListedDevice": "types", "TargetVersion": "types",
    "DMFlag": "flags",
    "dependency_graph": "deptree", "DeviceGraph": "deptree", "DeviceNode": "deptree",
    "stack_members": "stacks", "suspend_stack": "stacks", "resume_stack": "stacks",
    "reload_stack": "stacks", "remove_stack": "stacks", "ensure_stack": "stacks",
    "teardown_stack": "stacks", "DeviceSpec": "stacks", "Ensured": "stacks",
    "StackConflictError": "errors", "RollbackError": "errors",
    "DMError": "errors", "DeviceNotFoundError": "errors", "DeviceBusyError": "errors",
    "DeviceExistsError": "errors", "DMPermissionError": "errors",
    "InvalidTableError": "errors", "UnsupportedError": "errors", "RegionNotFoundError": "errors",
    "DeviceMapperUnavailableError": "errors", "ValidationError": "errors",
    "version": "api", "list_devices": "api", "info": "api", "create_device": "api",
    "remove": "api", "table": "api", "status": "api", "target_versions": "api",
    "message": "api", "reload": "api", "default_control": "api",
}

# subpackages reachable as attributes: ``dm.targets.ThinPool``
_SUBMODULES = {"composites", "stats", "targets"}

# Spelled out, not computed from the two above: type checkers read only a
# literal list (a unit test keeps the three in step).
__all__ = [
    "Control", "DMError", "DMFlag", "DMPermissionError", "DevNo", "Device", "DeviceBusyError",
    "DeviceExistsError", "DeviceGraph", "DeviceInfo", "DeviceMapperUnavailableError", "DeviceNode",
    "DeviceNotFoundError", "DeviceSpec", "Ensured", "InvalidTableError", "ListedDevice", "Name",
    "RegionNotFoundError", "RollbackError", "StackConflictError", "Table", "TableSyntaxError", "Target",
    "TargetStatus", "TargetVersion",
    "UnsupportedError", "Uuid", "ValidationError",
    "create_device", "default_control", "default_dev_dir", "dependency_graph", "ensure_stack", "info",
    "list_devices", "message", "parse_targets", "reload", "reload_stack", "remove", "remove_stack",
    "resume_stack", "stack_members", "status", "suspend_stack", "table", "target_versions",
    "teardown_stack", "version",
    "composites", "stats", "targets",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        __import__(f"pydevmapper.{name}")
        return sys.modules[f"pydevmapper.{name}"]
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pydevmapper' has no attribute {name!r}")
    # __import__, not importlib.import_module: importlib (and the warnings
    # module it imports) would cost every pydmsetup start.
    qualified = f"pydevmapper.{module}"
    __import__(qualified)
    value = getattr(sys.modules[qualified], name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from pydevmapper import composites, stats, targets
    from pydevmapper.api import (
        create_device,
        default_control,
        info,
        list_devices,
        message,
        reload,
        remove,
        status,
        table,
        target_versions,
        version,
    )
    from pydevmapper.control import Control, default_dev_dir
    from pydevmapper.deptree import DeviceGraph, DeviceNode, dependency_graph
    from pydevmapper.device import Device
    from pydevmapper.errors import (
        DeviceBusyError,
        DeviceExistsError,
        DeviceMapperUnavailableError,
        DeviceNotFoundError,
        DMError,
        DMPermissionError,
        InvalidTableError,
        RegionNotFoundError,
        RollbackError,
        StackConflictError,
        UnsupportedError,
        ValidationError,
    )
    from pydevmapper.flags import DMFlag
    from pydevmapper.stacks import (
        DeviceSpec,
        Ensured,
        ensure_stack,
        reload_stack,
        remove_stack,
        resume_stack,
        stack_members,
        suspend_stack,
        teardown_stack,
    )
    from pydevmapper.tables import Table, TableSyntaxError, Target, TargetStatus, parse_targets
    from pydevmapper.types import DeviceInfo, DevNo, ListedDevice, Name, TargetVersion, Uuid
