# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks run before anything is sent, so the kernel never sees bad input.

The kernel would silently truncate long names (strscpy into fixed arrays),
split parameters at newlines, and interpret '/' in a name as a path; we
refuse such input instead.
"""

from __future__ import annotations

from pydevmapper._dm import NAME_MAX_BYTES, TARGET_TYPE_MAX_BYTES, UUID_MAX_BYTES
from pydevmapper.errors import ValidationError

# Names the kernel reserves: the control node lives at /dev/mapper/control.
_RESERVED_NAMES = frozenset({".", "..", "control"})


def _encode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, not {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} {value!r} is not valid UTF-8: {exc}") from None


def _bounded(value: object, what: str, max_bytes: int) -> bytes:
    """Non-empty, at most max_bytes of UTF-8 (the kernel would truncate), no NUL."""
    raw = _encode(value, what)
    if not raw:
        raise ValidationError(f"{what} must not be empty")
    if len(raw) > max_bytes:
        raise ValidationError(
            f"{what} is {len(raw)} bytes; the kernel allows at most {max_bytes}"
        )
    if b"\0" in raw:
        raise ValidationError(f"{what} {value!r} contains a NUL byte")
    return raw


def _control_character(value: str, what: str) -> None:
    """Refuse control characters (C0, DEL, C1): the kernel takes them, but
    udev and the /dev/mapper entries would then name the device differently
    (udev replaces them), and a line break in a name splits every listing."""
    bad = next((c for c in value if c < " " or "\x7f" <= c <= "\x9f"), None)
    if bad is not None:
        raise ValidationError(f"{what} {value!r} contains the control character {ord(bad):#04x}")


def device_name(name: object) -> bytes:
    """Check a device name and return its bytes."""
    # A good name passes in this one frame: it is checked on every create,
    # and again when a resume or remove makes or removes its node, between
    # ioctls, where each further Python call costs tens of microseconds
    # under emulation.  Anything else goes through the checks one by one
    # below, for the error that says what is wrong.
    if isinstance(name, str):
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError:
            raw = b""
        if (raw and len(raw) <= NAME_MAX_BYTES and b"/" not in raw and name.isprintable()
                and name not in _RESERVED_NAMES):
            return raw
    raw = _bounded(name, "device name", NAME_MAX_BYTES)
    if b"/" in raw:
        raise ValidationError(f"device name {name!r} contains '/'")
    if name in _RESERVED_NAMES:
        raise ValidationError(f"device name {name!r} is reserved")
    return raw


def new_device_name(name: object) -> bytes:
    """Check a name a device is to be given (create, rename): a device_name
    without control characters.  An existing device is still addressed by
    the name it has, whoever gave it."""
    raw = device_name(name)
    assert isinstance(name, str)  # device_name refused anything else
    if not name.isprintable():
        _control_character(name, "device name")
    return raw


def device_uuid(uuid: object) -> bytes:
    """Check a device uuid and return its bytes."""
    return _bounded(uuid, "uuid", UUID_MAX_BYTES)


def new_device_uuid(uuid: object) -> bytes:
    """Check a uuid a device is to be given (create, set_uuid)."""
    raw = _bounded(uuid, "uuid", UUID_MAX_BYTES)
    assert isinstance(uuid, str)  # _bounded refused anything else
    if not uuid.isprintable():
        _control_character(uuid, "uuid")
    return raw


def unsigned(value: object, what: str, maximum: int) -> int:
    """An int from 0 to ``maximum`` (bool is refused): a protocol field's
    range, checked before the record codec or an allocation would fail on
    it with an untyped error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValidationError(f"{what} {value} is out of range (0 to {maximum})")
    return value


def sector_count(value: object, what: str) -> int:
    """A non-negative integer number of 512-byte sectors (bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValidationError(f"{what} must not be negative (got {value})")
    if value >= 1 << 64:
        raise ValidationError(f"{what} {value} does not fit in 64 bits")
    return value


def target_type(value: object) -> bytes:
    raw = _encode(value, "target type")
    if not raw:
        raise ValidationError("target type must not be empty")
    if len(raw) > TARGET_TYPE_MAX_BYTES:
        raise ValidationError(
            f"target type {value!r} is {len(raw)} bytes; at most {TARGET_TYPE_MAX_BYTES}"
        )
    # Any str whitespace (e.g. \x1c, \xa0), since Table.parse splits fields
    # with str.split(); split() finds it without a Python loop over the text.
    assert isinstance(value, str)  # _encode refused anything else
    if "\0" in value or value.split() != [value]:
        raise ValidationError(f"target type {value!r} contains whitespace or NUL")
    return raw


def parameter_string(value: object, what: str = "target parameters", *, secret: bool = False) -> bytes:
    """Parameters and messages: one line, no NUL (the kernel splits at both).

    ``secret``: the text may hold key material, so errors do not quote it.
    """
    try:
        raw = _encode(value, what)
    except ValidationError:
        if secret:
            raise ValidationError(f"{what} are not valid UTF-8") from None
        raise
    if b"\0" in raw or b"\n" in raw or b"\r" in raw:
        shown = "" if secret else f" {value!r}"
        problem = "a NUL byte" if b"\0" in raw else "a line break"
        raise ValidationError(f"{what}{shown} contain {problem}")
    return raw


# Targets whose parameters may hold keys (crypt's key, integrity's
# internal_hash/journal_crypt/journal_mac keys): never quoted or shown.
KEYED_TARGETS = frozenset({"crypt", "integrity"})
