# SPDX-License-Identifier: LGPL-2.1-or-later
"""Encryption and integrity: ``crypt``, ``verity`` and ``integrity``.

Keys are ``Secret`` objects: never in ``repr``, ``str``, exceptions or logs;
tables go out with DM_SECURE_DATA_FLAG (every table load does) and key
messages too.  The kernel prints keys back in full for ``table`` (dmsetup
masks them unless ``--showkeys``); reading a table gives them back as
``Secret`` objects.

Formats: the kernel's drivers/md/dm-crypt.c, dm-verity-target.c,
dm-verity-fec.c, dm-integrity.c and their
``Documentation/admin-guide/device-mapper/*.rst`` (where those disagree, the C code wins).
"""

from __future__ import annotations

import dataclasses
import string

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.targets._base import (
    Message,
    NoStatus,
    ParameterError,
    Params,
    Secret,
    Status,
    Words,
    as_devno,
    is_power_of_two,
    register,
)
from pydevmapper.types import DevNo

_HEX = frozenset(string.hexdigits)
IV_MODES = ("plain", "plain64", "plain64be", "essiv", "benbi", "null", "eboiv", "elephant", "lmk", "tcw", "random")
KEY_TYPES = ("logon", "user", "encrypted", "trusted")
MAX_TAG_SIZE = 480


class KeyringKey(NamedTuple):
    """A key in the kernel keyring: ``:<size>:<type>:<description>``.
    Only a reference: the kernel prints it back as given."""

    size: int
    type: str
    description: str

    def __str__(self) -> str:
        return f":{self.size}:{self.type}:{self.description}"


def _hex_secret(value: object, target_type: str, field: str) -> Secret:
    """A hex key as the kernel prints it (lower case), from bytes, a hex str or a Secret."""
    if isinstance(value, (bytes, bytearray)):
        return Secret(bytes(value).hex())
    text = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(text, str) or len(text) % 2 or not text or not set(text) <= _HEX:
        # Never quote the value: it is key material.
        raise ParameterError(target_type, field, "must be bytes or an even number of hex digits")
    return Secret(text.lower())


def _key(value: object) -> Secret | KeyringKey | None:
    if value is None or isinstance(value, KeyringKey):
        return value
    text = value.reveal() if isinstance(value, Secret) else value
    if text == "-":
        return None
    if isinstance(text, str) and text.startswith(":"):
        size, sep, rest = text[1:].partition(":")
        key_type, sep2, desc = rest.partition(":")
        if not (sep and sep2 and size.isdigit() and desc):
            raise ParameterError("crypt", "key", "a keyring key is :<size>:<type>:<description>")
        return KeyringKey(int(size), key_type, desc)
    return _hex_secret(value, "crypt", "key")


def _check_cipher(cipher: str) -> None:
    """dm-crypt's two forms, split as crypt_ctr_cipher_new/_old split them."""
    if not cipher or any(c.isspace() for c in cipher):
        raise ParameterError("crypt", "cipher", f"{cipher!r} is not a cipher specification")
    if cipher.startswith("capi:"):
        # capi:<crypto API spec>[-<ivmode>][:<ivopts>]: the options first, at
        # the last ':' (a hash name may hold '-'), then the mode at the last '-'.
        spec, _, ivopts = cipher[5:].rpartition(":") if ":" in cipher[5:] else (cipher[5:], "", "")
        api, _, ivmode = spec.rpartition("-") if "-" in spec else (spec, "", "")
        if not api:
            raise ParameterError("crypt", "cipher", f"{cipher!r}: capi:<crypto API spec>-<ivmode>[:<ivopts>]")
        if not ivmode:
            return
    else:
        # <cipher>[:<keycount>][-<chainmode>[-<ivmode>[:<ivopts>]]]
        parts = cipher.split("-", 2)
        name, _, count = parts[0].partition(":")
        if "(" in cipher or not name:
            raise ParameterError("crypt", "cipher", f"{cipher!r}: <cipher>[:<keycount>]-<chainmode>-<ivmode>[:<ivopts>]"
                                                     " (crypto API names need the capi: form)")
        if count and not (count.isdigit() and is_power_of_two(int(count))):
            raise ParameterError("crypt", "cipher", f"{cipher!r}: the key count must be a power of two")
        if len(parts) < 3:
            if len(parts) == 2 and parts[1] not in ("ecb", "plain"):
                raise ParameterError("crypt", "cipher", f"{cipher!r}: chain mode {parts[1]} needs an IV mode")
            return
        ivmode, _, ivopts = parts[2].partition(":")
    if ivmode not in IV_MODES:
        raise ParameterError("crypt", "cipher", f"{cipher!r}: unknown IV mode {ivmode!r} ({', '.join(IV_MODES)})")
    if ivmode == "essiv" and not ivopts:
        raise ParameterError("crypt", "cipher", f"{cipher!r}: essiv needs a digest (essiv:sha256)")


# crypt's flags in the order the kernel prints them
_CRYPT_FLAGS = ("allow_discards", "same_cpu_crypt", "high_priority", "submit_from_crypt_cpus",
                "no_read_workqueue", "no_write_workqueue")


@register
@dataclasses.dataclass(frozen=True)
class Crypt(Params):
    """``<cipher> <key> <iv offset> <device> <offset> [<#options> <option>...]``.

    ``key``: bytes, hex text or a ``Secret`` (kept as a Secret), a
    ``KeyringKey``, or None (``-``, no key).  ``integrity`` is
    ``(tag bytes, "aead"|"none")``; ``sector_size`` 512 to 4096;
    ``high_priority`` and ``integrity_key_size`` need crypt 1.26+ (6.12).
    """

    TYPE = "crypt"
    Status = NoStatus
    SECRET = True
    cipher: str
    key: Secret | KeyringKey | None
    iv_offset: int
    device: DevNo
    offset: int = 0
    allow_discards: bool = False
    same_cpu_crypt: bool = False
    high_priority: bool = False
    submit_from_crypt_cpus: bool = False
    no_read_workqueue: bool = False
    no_write_workqueue: bool = False
    integrity: tuple[int, str] | None = None
    sector_size: int = 512
    iv_large_sectors: bool = False
    integrity_key_size: int | None = None

    def _convert(self) -> None:
        self._set("key", _key(self.key))
        if self.integrity is not None:
            self._set("integrity", (self.integrity[0], self.integrity[1]))

    def _check(self) -> None:
        _check_cipher(self.cipher)
        if isinstance(self.key, KeyringKey) and (self.key.type not in KEY_TYPES or any(
                c.isspace() for c in self.key.description)):
            raise self._error("key", f"keyring key type must be one of {', '.join(KEY_TYPES)}, without blanks")
        if not is_power_of_two(self.sector_size) or not 512 <= self.sector_size <= 4096:
            raise self._error("sector_size", f"must be a power of two from 512 to 4096, got {self.sector_size}")
        if self.iv_offset % (self.sector_size // 512):
            raise self._error("iv_offset", f"must be a multiple of the sector size ({self.sector_size // 512} "
                                           "sectors)")
        if self.integrity is not None:
            size, kind = self.integrity
            if not 1 <= size <= MAX_TAG_SIZE or kind.lower() not in ("aead", "none"):
                raise self._error("integrity", f"must be (1..{MAX_TAG_SIZE} bytes, 'aead' or 'none'), "
                                               f"got {self.integrity}")
        if self.integrity_key_size is not None and self.integrity_key_size <= 0:
            raise self._error("integrity_key_size", "must be positive")

    def check_length(self, length: int) -> None:
        if length % (self.sector_size // 512):
            raise self._error("length", f"{length} is not a multiple of the sector size {self.sector_size}")

    def _options(self) -> list[str]:
        options = [f for f in _CRYPT_FLAGS if getattr(self, f)]
        if self.integrity is not None:
            options.append(f"integrity:{self.integrity[0]}:{self.integrity[1]}")
        if self.sector_size != 512:
            options.append(f"sector_size:{self.sector_size}")
        if self.iv_large_sectors:
            options.append("iv_large_sectors")
        if self.integrity_key_size is not None:
            options.append(f"integrity_key_size:{self.integrity_key_size}")
        return options

    def format(self) -> str:
        """The table text, key included (it goes to the kernel only in a
        table load, which always carries DM_SECURE_DATA_FLAG)."""
        key = "-" if self.key is None else self.key.reveal() if isinstance(self.key, Secret) else str(self.key)
        options = self._options()
        text = f"{self.cipher} {key} {self.iv_offset} {self.device} {self.offset}"
        return " ".join([text, str(len(options)), *options]) if options else text

    def __str__(self) -> str:  # the key never shows, not even through str()
        return repr(self)

    @classmethod
    def _read(cls, w: Words) -> Crypt:
        cipher, parsed_key = w.take("cipher"), _key(w.take("key"))
        iv_offset, device, offset = w.int("iv_offset"), w.dev("device"), w.int("offset")
        kw: dict[str, object] = {}
        for word in w.counted("options"):
            name, _, value = word.partition(":")
            lname = name.lower()
            if lname in _CRYPT_FLAGS or lname == "iv_large_sectors":
                kw[lname] = True
            elif lname == "integrity":
                size, _, kind = value.partition(":")
                if not size.isdigit() or not kind:
                    raise w.error("integrity", f"{word!r} is not integrity:<bytes>:<type>")
                kw["integrity"] = (int(size), kind)
            elif lname in ("sector_size", "integrity_key_size") and value.isdigit():
                kw[lname] = int(value)
            else:
                raise w.error("options", f"unknown option {word!r}")
        return cls(cipher, parsed_key, iv_offset, device, offset, **kw)  # type: ignore[arg-type]

    @staticmethod
    def key_set(key: bytes | str | Secret | KeyringKey) -> Message:
        """Load a key (the device must be suspended); sent as secure data."""
        value = _key(key)
        if value is None:
            raise ParameterError("crypt", "key", "key set needs a key")
        return Message("key", "set", value if isinstance(value, Secret) else Secret(str(value)), secure=True)

    @staticmethod
    def key_wipe() -> Message:
        """Wipe the key (the device must be suspended); the table then shows zeros."""
        return Message("key", "wipe", secure=True)


# --------------------------------------------------------------------------
# verity

_CORRUPTION_MODES = ("ignore_corruption", "restart_on_corruption", "panic_on_corruption")
_ERROR_MODES = ("restart_on_error", "panic_on_error")
_VERITY_FLAGS = ("ignore_zero_blocks", "check_at_most_once", "try_verify_in_tasklet")


class VerityFec(NamedTuple):
    """Forward error correction: ``use_fec_from_device <dev> fec_blocks <n>
    fec_start <n> fec_roots <2..24>``."""

    device: DevNo
    blocks: int
    start: int
    roots: int


@dataclasses.dataclass(frozen=True)
class VerityStatus(Status):
    """``V`` (every block read verified) or ``C`` (a corrupted block was
    seen), then, from Linux 7.x, the errors forward error correction has
    corrected (``-`` when the table has none).

    ``fec_corrected`` is None when there is no FEC, or the kernel does not
    report it."""

    TYPE = "verity"
    state: str
    fec_corrected: int | None = None
    extra: tuple[str, ...] = ()

    @property
    def corrupted(self) -> bool:
        """A corrupted block was found (state ``C``)."""
        return self.state == "C"

    @classmethod
    def _read(cls, w: Words) -> VerityStatus:
        state = w.choice("state", ("V", "C"))
        # Before 7.x the state is all; a word there that is no count is
        # something newer still, kept in extra.
        fec = w.peek()
        corrected = w.optional_int("fec corrected") if fec == "-" or (fec or "").isdigit() else None
        return cls(state, corrected, w.rest())


def _hex_field(value: str | None, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) % 2 or not set(value) <= _HEX:
        raise ParameterError("verity", field, f"must be an even number of hex digits, got {value!r}")
    return value.lower()


@register
@dataclasses.dataclass(frozen=True)
class Verity(Params):
    """``<version> <data dev> <hash dev> <data block size> <hash block size>
    <#data blocks> <hash start block> <algorithm> <digest> <salt>
    [<#options> <option>...]``.  The table must be loaded read-only.

    Block sizes in bytes (powers of two, data at most 4096); ``salt`` None
    prints ``-``.  ``error_mode`` needs verity 1.10 (6.12).
    """

    TYPE = "verity"
    Status = VerityStatus
    version: int
    data_device: DevNo
    hash_device: DevNo
    data_block_size: int
    hash_block_size: int
    num_data_blocks: int
    hash_start_block: int
    algorithm: str
    digest: str
    salt: str | None = None
    corruption_mode: str | None = None
    error_mode: str | None = None
    ignore_zero_blocks: bool = False
    check_at_most_once: bool = False
    try_verify_in_tasklet: bool = False
    fec: VerityFec | None = None
    root_hash_sig_key_desc: str | None = None

    def _convert(self) -> None:
        self._set("digest", _hex_field(self.digest, "digest"))
        self._set("salt", None if self.salt in (None, "-") else _hex_field(self.salt, "salt"))
        if self.fec is not None:
            f = self.fec
            self._set("fec", VerityFec(as_devno(f[0], self.TYPE, "fec device"), f[1], f[2], f[3]))

    def _check(self) -> None:
        if self.version not in (0, 1):
            raise self._error("version", f"must be 0 or 1, got {self.version}")
        if not is_power_of_two(self.data_block_size) or not 512 <= self.data_block_size <= 4096:
            raise self._error("data_block_size", f"must be a power of two from 512 to 4096, got {self.data_block_size}")
        if not is_power_of_two(self.hash_block_size) or not 512 <= self.hash_block_size < 2**31:
            raise self._error("hash_block_size", f"must be a power of two of at least 512, got {self.hash_block_size}")
        if len(self.digest) > self.hash_block_size:  # the digest (hex) is twice its bytes
            raise self._error("digest", "longer than half a hash block")
        if not self.algorithm or any(c.isspace() for c in self.algorithm):
            raise self._error("algorithm", f"{self.algorithm!r} is not an algorithm name")
        if self.corruption_mode is not None and self.corruption_mode not in _CORRUPTION_MODES:
            raise self._error("corruption_mode", f"must be one of {', '.join(_CORRUPTION_MODES)}")
        if self.error_mode is not None and self.error_mode not in _ERROR_MODES:
            raise self._error("error_mode", f"must be one of {', '.join(_ERROR_MODES)}")
        if self.fec is not None:
            if not 2 <= self.fec.roots <= 24:
                raise self._error("fec", f"roots must be from 2 to 24, got {self.fec.roots}")
            if self.data_block_size != self.hash_block_size:
                raise self._error("fec", "needs equal data and hash block sizes")
            if self.fec.blocks < self.num_data_blocks:
                raise self._error("fec", "fec blocks must cover the data and hash blocks")

    def check_length(self, length: int) -> None:
        if length > self.num_data_blocks * (self.data_block_size // 512):
            raise self._error("length", f"{length} sectors is more than the {self.num_data_blocks} data blocks")

    def format(self) -> str:
        options: list[str] = []
        for value in (self.corruption_mode, self.error_mode):
            if value is not None:
                options.append(value)
        options += [f for f in _VERITY_FLAGS if getattr(self, f)]
        if self.fec is not None:
            f = self.fec
            options += ["use_fec_from_device", str(f.device), "fec_blocks", str(f.blocks), "fec_start", str(f.start),
                        "fec_roots", str(f.roots)]
        if self.root_hash_sig_key_desc is not None:
            options += ["root_hash_sig_key_desc", self.root_hash_sig_key_desc]
        text = (f"{self.version} {self.data_device} {self.hash_device} {self.data_block_size} "
                f"{self.hash_block_size} {self.num_data_blocks} {self.hash_start_block} {self.algorithm} "
                f"{self.digest} {self.salt or '-'}")
        return " ".join([text, str(len(options)), *options]) if options else text

    @classmethod
    def _read(cls, w: Words) -> Verity:
        head = (w.int("version"), w.dev("data_device"), w.dev("hash_device"), w.int("data_block_size"),
                w.int("hash_block_size"), w.int("num_data_blocks"), w.int("hash_start_block"),
                w.take("algorithm"), w.take("digest"), w.take("salt"))
        opts = Words(" ".join(w.counted("options")), cls.TYPE)
        kw: dict[str, object] = {}
        fec: dict[str, object] = {}
        while opts.more():
            name = opts.take("option").lower()
            if name in _CORRUPTION_MODES:
                kw["corruption_mode"] = name
            elif name in _ERROR_MODES:
                kw["error_mode"] = name
            elif name in _VERITY_FLAGS:
                kw[name] = True
            elif name == "use_fec_from_device":
                fec["device"] = opts.dev("use_fec_from_device")
            elif name in ("fec_blocks", "fec_start", "fec_roots"):
                fec[name[4:]] = opts.int(name)
            elif name == "root_hash_sig_key_desc":
                kw[name] = opts.take(name)
            else:
                raise opts.error("options", f"unknown option {name!r}")
        if fec:
            if set(fec) != {"device", "blocks", "start", "roots"}:
                raise w.error("fec", "use_fec_from_device, fec_blocks, fec_start and fec_roots go together")
            kw["fec"] = VerityFec(**fec)  # type: ignore[arg-type]
        return cls(*head, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# integrity

INTEGRITY_MODES = ("J", "B", "D", "R", "I")


class Algorithm(NamedTuple):
    """``internal_hash``/``journal_crypt``/``journal_mac``: an algorithm and
    an optional key (a Secret; the kernel prints it back)."""

    name: str
    key: Secret | None = None

    def text(self) -> str:
        """``name`` or ``name:key``, as the table line carries it (the key revealed)."""
        return f"{self.name}:{self.key.reveal()}" if self.key is not None else self.name


@dataclasses.dataclass(frozen=True)
class IntegrityStatus(Status):
    """``<mismatches> <provided data sectors> <recalculated up to|->``."""

    TYPE = "integrity"
    mismatches: int
    provided_data_sectors: int
    recalculate_sector: int | None = None
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> IntegrityStatus:
        mismatches, provided = w.int("mismatches"), w.int("provided_data_sectors")
        recalc = w.optional_int("recalculate_sector") if w.more() else None
        return cls(mismatches, provided, recalc, w.rest())


# integrity's valued options in the order the kernel prints them
_INTEGRITY_VALUED = ("journal_sectors", "interleave_sectors", "buffer_sectors", "journal_watermark",
                     "commit_time", "sectors_per_bit", "bitmap_flush_interval")


@register
@dataclasses.dataclass(frozen=True)
class Integrity(Params):
    """``<device> <offset> <tag size|-> <mode> <#options> <option>...``.

    ``mode``: ``J`` journaled, ``B`` bitmap, ``D`` direct, ``R``
    recovery (read-only, no checks), ``I`` inline (integrity 1.12, 6.12).
    ``tag_size`` None (``-``) takes the internal hash's size.  The kernel
    prints the table back normalised: ``journal_sectors``,
    ``interleave_sectors`` and ``buffer_sectors`` always (as in effect),
    ``journal_watermark``/``commit_time`` in J mode, ``sectors_per_bit``/
    ``bitmap_flush_interval`` in B mode, ``recalculate``/``fix_padding``/
    ``fix_hmac`` from the superblock.  Options left None are not given.
    """

    TYPE = "integrity"
    SECRET = True
    device: DevNo
    offset: int
    tag_size: int | None
    mode: str
    meta_device: DevNo | None = None
    block_size: int = 512
    recalculate: bool = False
    reset_recalculate: bool = False
    allow_discards: bool = False
    allow_discards_keyed: bool = False
    journal_sectors: int | None = None
    interleave_sectors: int | None = None
    buffer_sectors: int | None = None
    journal_watermark: int | None = None
    commit_time: int | None = None
    sectors_per_bit: int | None = None
    bitmap_flush_interval: int | None = None
    fix_padding: bool = False
    fix_hmac: bool = False
    legacy_recalculate: bool = False
    internal_hash: Algorithm | None = None
    journal_crypt: Algorithm | None = None
    journal_mac: Algorithm | None = None
    Status = IntegrityStatus

    def _convert(self) -> None:
        for field in ("internal_hash", "journal_crypt", "journal_mac"):
            value = getattr(self, field)
            if isinstance(value, str):  # "alg" or, as the kernel writes it, "alg:hexkey"
                alg, _, hexkey = value.partition(":")
                value = (alg, hexkey) if hexkey else (alg,)
            if value is not None:
                name, key = (value[0], value[1] if len(value) > 1 else None)
                self._set(field, Algorithm(name, None if key is None else _hex_secret(key, self.TYPE, field)))

    def _check(self) -> None:
        if self.mode not in INTEGRITY_MODES:
            raise self._error("mode", f"must be one of {', '.join(INTEGRITY_MODES)}, got {self.mode!r}")
        if self.tag_size is None and self.internal_hash is None:
            raise self._error("tag_size", "'-' (None) takes the internal hash's size: give internal_hash")
        if self.tag_size is not None and not 1 <= self.tag_size <= MAX_TAG_SIZE:
            raise self._error("tag_size", f"must be from 1 to {MAX_TAG_SIZE}, got {self.tag_size}")
        if not is_power_of_two(self.block_size) or not 512 <= self.block_size <= 4096:
            raise self._error("block_size", f"must be a power of two from 512 to 4096, got {self.block_size}")
        if self.journal_watermark is not None and not 0 <= self.journal_watermark <= 100:
            raise self._error("journal_watermark", f"must be a percentage, got {self.journal_watermark}")
        for field in _INTEGRITY_VALUED:
            value = getattr(self, field)
            if value is not None and not 0 <= value < 2**64:
                raise self._error(field, f"must be non-negative, got {value}")
        if self.mode == "B" and self.internal_hash is None:
            raise self._error("mode", "bitmap mode needs internal_hash")
        if self.allow_discards and self.internal_hash is None:
            raise self._error("allow_discards", "needs internal_hash")
        if self.allow_discards_keyed and (self.internal_hash is None or self.internal_hash.key is None):
            raise self._error("allow_discards_keyed", "needs a keyed internal_hash")
        if self.allow_discards_keyed and self.allow_discards:
            raise self._error("allow_discards_keyed", "replaces allow_discards: give one")
        if self.mode == "I":
            for field in ("meta_device", "journal_crypt"):
                if getattr(self, field) is not None:
                    raise self._error(field, "not in inline mode (I)")
            if self.internal_hash is None:
                raise self._error("internal_hash", "inline mode (I) needs it")
            if self.allow_discards or self.allow_discards_keyed:
                raise self._error("allow_discards", "discards are not supported in inline mode (I)")
        if (self.recalculate or self.reset_recalculate) and self.internal_hash is None:
            raise self._error("recalculate", "needs internal_hash")
        for field in ("internal_hash", "journal_crypt", "journal_mac"):
            value = getattr(self, field)
            if value is not None and (not value.name or any(c.isspace() or c == ":" for c in value.name)):
                raise self._error(field, f"{value.name!r} is not an algorithm name")

    def format(self) -> str:
        options: list[str] = []
        if self.meta_device is not None:
            options.append(f"meta_device:{self.meta_device}")
        if self.block_size != 512:
            options.append(f"block_size:{self.block_size}")
        options += [f for f in ("recalculate", "reset_recalculate", "allow_discards", "allow_discards_keyed")
                    if getattr(self, f)]
        options += [f"{f}:{getattr(self, f)}" for f in _INTEGRITY_VALUED if getattr(self, f) is not None]
        options += [f for f in ("fix_padding", "fix_hmac", "legacy_recalculate") if getattr(self, f)]
        options += [f"{f}:{getattr(self, f).text()}" for f in ("internal_hash", "journal_crypt", "journal_mac")
                    if getattr(self, f) is not None]
        tag = "-" if self.tag_size is None else str(self.tag_size)
        return " ".join([str(self.device), str(self.offset), tag, self.mode, str(len(options)), *options])

    def __str__(self) -> str:  # may hold keys
        return repr(self)

    @classmethod
    def _read(cls, w: Words) -> Integrity:
        device, offset = w.dev("device"), w.int("offset")
        tag_word = w.take("tag_size")
        if tag_word != "-" and not tag_word.isdigit():
            raise w.error("tag_size", f"{tag_word!r} is neither a size nor -")
        mode = w.take("mode")
        kw: dict[str, object] = {}
        for word in w.counted("options"):
            name, sep, value = word.partition(":")
            if not sep and name in ("recalculate", "reset_recalculate", "allow_discards", "allow_discards_keyed",
                                    "fix_padding", "fix_hmac", "legacy_recalculate"):
                kw[name] = True
            elif sep and name in _INTEGRITY_VALUED + ("block_size",) and value.isdigit():
                kw[name] = int(value)
            elif sep and name == "meta_device":
                kw[name] = as_devno(value, cls.TYPE, name)
            elif sep and name in ("internal_hash", "journal_crypt", "journal_mac"):
                alg, _, key = value.partition(":")
                kw[name] = Algorithm(alg, _hex_secret(key, cls.TYPE, name) if key else None)
            else:
                # Not quoted: the word may hold a key.
                raise w.error("options", f"unknown option {name!r}")
        return cls(device, offset, None if tag_word == "-" else int(tag_word), mode, **kw)  # type: ignore[arg-type]
