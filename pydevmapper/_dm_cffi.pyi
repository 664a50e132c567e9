# SPDX-License-Identifier: LGPL-2.1-or-later
"""Types of the compiled binding, built by build_support/dm_build.py.

The extension module holds only ``ffi`` and ``lib``; the classes here are
for type checkers (import them under ``if TYPE_CHECKING:``).  ``lib`` lists
every name the cdef declares, with the C types as Python sees them: the
``#define ...`` and ``static const`` values are ints, functions take ints
or cdata and return ints.  What a cdata's fields and items are depends on
its C type, which no checker sees, so they are ``Any``.
"""

from typing import Any

class CType:
    """A C type, as ``ffi.typeof`` gives it."""

    kind: str  # "primitive", "struct", "array", "pointer", ...
    cname: str
    # For arrays and pointers: the element type; for arrays, the length
    # (None when unsized, as in "char[]").
    item: CType
    length: int | None
    # For structs and unions (AttributeError otherwise).
    fields: list[tuple[str, CField]]

class CField:
    """A struct member, from ``CType.fields``."""

    type: CType
    offset: int
    bitshift: int
    bitsize: int
    flags: int

class CData:
    """A C object (``ffi.new``, ``ffi.cast``): its fields and items are
    typed by C declarations that checkers do not see."""

    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def __getitem__(self, index: int) -> Any: ...
    def __setitem__(self, index: int, value: Any) -> None: ...
    def __add__(self, offset: int) -> CData: ...
    def __sub__(self, offset: int) -> CData: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __iter__(self) -> Any: ...

class CBuffer:
    """The memory of a cdata as a Python buffer (``ffi.buffer``)."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: slice) -> bytes: ...
    def __setitem__(self, index: slice, value: bytes) -> None: ...

class Allocator:
    """``ffi.new`` with other allocation rules (``ffi.new_allocator``)."""

    def __call__(self, cdecl: str, init: Any = ...) -> CData: ...

_Bytes = bytes | bytearray | memoryview | CBuffer

class FFI:
    """The subset of cffi's FFI that pydevmapper uses."""

    # The C errno as the last call through lib left it, per thread.
    errno: int
    def new(self, cdecl: str, init: Any = ...) -> CData: ...
    def new_allocator(self, alloc: Any = None, free: Any = None,
                      should_clear_after_alloc: bool = True) -> Allocator: ...
    def cast(self, cdecl: str, value: CData | int) -> CData: ...
    def typeof(self, cdecl: str | CData) -> CType: ...
    def sizeof(self, cdecl: str | CType | CData) -> int: ...
    def offsetof(self, cdecl: str | CType, *fields: str | int) -> int: ...
    def buffer(self, cdata: CData, size: int = ...) -> CBuffer: ...
    def from_buffer(self, cdecl: str | CData | _Bytes, python_buffer: _Bytes = ...,
                    require_writable: bool = False) -> CData: ...
    def memmove(self, dest: CData | bytearray | memoryview | CBuffer,
                src: CData | _Bytes, n: int) -> None: ...
    # bytes for char data (str for wchar_t, not used here).
    def string(self, cdata: CData, maxlen: int = -1) -> bytes: ...
    # bytes for a char array, list[int] for an integer array.
    def unpack(self, cdata: CData, length: int) -> Any: ...

class Lib:
    """The cdef's constants and functions."""

    # Offsets of the flexible-array members, and the binding's own values.
    PYDM_OFFSETOF_DEPS_DEV: int
    PYDM_OFFSETOF_NAME_LIST_NAME: int
    PYDM_OFFSETOF_VERSIONS_NAME: int
    PYDM_OFFSETOF_MSG_MESSAGE: int
    PYDM_OFFSETOF_IOCTL_DATA: int
    PYDM_OFFSETOF_FIEMAP_EXTENTS: int
    PYDM_BINDING_ABI: int
    PYDM_LISTED_EVENT_NR: int
    PYDM_LISTED_UUID: int

    DM_IOCTL: int
    DM_VERSION_MAJOR: int
    DM_VERSION_MINOR: int
    DM_VERSION_PATCHLEVEL: int
    DM_NAME_LEN: int
    DM_UUID_LEN: int
    DM_MAX_TYPE_NAME: int

    # ioctl request numbers
    DM_VERSION: int
    DM_REMOVE_ALL: int
    DM_LIST_DEVICES: int
    DM_DEV_CREATE: int
    DM_DEV_REMOVE: int
    DM_DEV_RENAME: int
    DM_DEV_SUSPEND: int
    DM_DEV_STATUS: int
    DM_DEV_WAIT: int
    DM_TABLE_LOAD: int
    DM_TABLE_CLEAR: int
    DM_TABLE_DEPS: int
    DM_TABLE_STATUS: int
    DM_LIST_VERSIONS: int
    DM_TARGET_MSG: int
    DM_DEV_SET_GEOMETRY: int
    DM_DEV_ARM_POLL: int
    DM_GET_TARGET_VERSION: int

    DM_READONLY_FLAG: int
    DM_SUSPEND_FLAG: int
    DM_PERSISTENT_DEV_FLAG: int
    DM_STATUS_TABLE_FLAG: int
    DM_ACTIVE_PRESENT_FLAG: int
    DM_INACTIVE_PRESENT_FLAG: int
    DM_BUFFER_FULL_FLAG: int
    DM_SKIP_BDGET_FLAG: int
    DM_SKIP_LOCKFS_FLAG: int
    DM_NOFLUSH_FLAG: int
    DM_QUERY_INACTIVE_TABLE_FLAG: int
    DM_UEVENT_GENERATED_FLAG: int
    DM_UUID_FLAG: int
    DM_SECURE_DATA_FLAG: int
    DM_DATA_OUT_FLAG: int
    DM_DEFERRED_REMOVE: int
    DM_INTERNAL_SUSPEND_FLAG: int
    DM_IMA_MEASUREMENT_FLAG: int
    DM_NAME_LIST_FLAG_HAS_UUID: int
    DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID: int

    LOOP_CTL_GET_FREE: int
    LOOP_SET_FD: int
    LOOP_CLR_FD: int
    LOOP_SET_STATUS64: int
    LOOP_GET_STATUS64: int
    LOOP_CONFIGURE: int
    LO_FLAGS_AUTOCLEAR: int
    LO_FLAGS_DIRECT_IO: int
    LO_FLAGS_READ_ONLY: int

    IPC_CREAT: int
    IPC_EXCL: int
    IPC_NOWAIT: int
    IPC_RMID: int
    IPC_STAT: int
    SETVAL: int
    GETVAL: int
    SEM_INFO: int
    SEM_STAT: int

    HDIO_GETGEO: int
    FS_IOC_FIEMAP: int
    FIEMAP_FLAG_SYNC: int
    FIEMAP_EXTENT_LAST: int
    FIEMAP_EXTENT_UNKNOWN: int
    FIEMAP_EXTENT_DELALLOC: int
    SYS_finit_module: int
    SYS_delete_module: int

    # Variadic arguments must be cdata (ffi.cast) for cffi to know their C type.
    def ioctl(self, fd: int, request: int, *args: CData) -> int: ...
    def pydm_dm_ioctl(self, fd: int, request: int, buffer: CData) -> int: ...
    def pydm_zero(self, buffer: CData, start: int, end: int) -> None: ...
    def pydm_name_list_columns(self, data: bytes, size: int, with_tail: int, capacity: int,
                               majors: CData, minors: CData, event_nrs: CData, present: CData,
                               names: CData, uuids: CData, totals: CData) -> int: ...
    def semget(self, key: int | CData, nsems: int, semflg: int) -> int: ...
    def semctl(self, semid: int, semnum: int, cmd: int, *args: CData) -> int: ...
    def semop(self, semid: int, sops: CData, nsops: int) -> int: ...
    def semtimedop(self, semid: int, sops: CData, nsops: int, timeout: CData) -> int: ...
    def pydm_cookie_create(self, ids: CData) -> int: ...
    def pydm_cookie_remove(self, ids: CData) -> int: ...
    def pydm_semop(self, semid: int, op: int, flags: int, timeout_ns: int) -> int: ...
    def pydm_on_btrfs(self, fd: int) -> int: ...
    def syscall(self, number: int, *args: CData) -> int: ...

ffi: FFI
lib: Lib
