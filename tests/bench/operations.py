# SPDX-License-Identifier: LGPL-2.1-or-later
"""The devices the operations need, and the run: every operation, every contender.

All benchmark devices are named ``pydmbench-*``; a sweep removes leftovers
before and after the run, even after a failure.  Timing: warm-up calls
first, then ``time.perf_counter`` around each call until both a minimum
count and a time budget are reached (TCG guests are slow and noisy, so
budgets, not fixed counts, bound the run).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import pydevmapper as dm
from pydevmapper import kmod, loopdev, udev
from tests.bench import contenders as cn
from tests.bench import report

PREFIX = "pydmbench-"
SECTORS = 2048  # 1 MiB devices
LOOP_BYTES = 16 * 1024 * 1024
MESSAGE = "stats"  # basic_target answers with its counters
SINGLE_OPS = ("version", "info", "table", "status", "message")
LIFECYCLE_OPS = ("lifecycle_nosync", "lifecycle_udev")
LIST_SIZES = (10, 100, 1000, 5000)


class Budget(NamedTuple):
    warmup: int
    min_n: int
    max_n: int
    seconds: float

    def scaled(self, f: float) -> Budget:
        return Budget(self.warmup, max(3, int(self.min_n * f)), self.max_n, self.seconds * f)

    def share(self, r: int, rounds: int) -> Budget:
        """Round ``r``'s part of this budget.  The warm-up is repeated in
        every round: the other contenders ran in between, and under TCG
        code that has not run for a while is dear again (its translations
        and the emulated TLB are gone)."""
        if rounds == 1:
            return self
        return Budget(self.warmup, max(1, -(-self.min_n // rounds)),
                      max(1, -(-self.max_n // rounds)), self.seconds / rounds)


IN_PROCESS = Budget(warmup=10, min_n=30, max_n=3000, seconds=1.5)
IN_PROCESS_LIFECYCLE = Budget(warmup=2, min_n=10, max_n=300, seconds=4.0)
PROCESS = Budget(warmup=1, min_n=5, max_n=60, seconds=3.0)
PROCESS_LIFECYCLE = Budget(warmup=1, min_n=5, max_n=30, seconds=5.0)
# A Python process takes seconds to start in a TCG guest over 9p (10-20 s
# on a loaded host): two runs per operation keep the whole run near 10 min.
# Fetching and parsing thin volumes' statuses, typed against raw.
THIN_VOLUMES = 1000
THIN_STATUS = Budget(warmup=1, min_n=5, max_n=50, seconds=10.0)
PYTHON_PROCESS = Budget(warmup=0, min_n=2, max_n=2, seconds=0.0)
# Reading the counters of many dm-stats regions of one device.
STATS_REGIONS = 100
STATS_PRINT = Budget(warmup=2, min_n=10, max_n=200, seconds=6.0)
LIFECYCLE_ROUNDS = 4


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Timed(NamedTuple):
    """One contender's share of an interleaved run."""

    wall: List[float]  # seconds per call (perf_counter)
    cpu: List[float]  # seconds of this process's CPU per call (process_time)
    failure: Optional[BaseException]  # what stopped it, if anything did


def time_interleaved(fns: Dict[str, Callable[[], object]], b: Budget,
                     after_failure: Callable[[], None] = lambda: None) -> Dict[str, Timed]:
    """Time several contenders' calls taking turns, call by call.

    Each iteration calls every contender once, the order rotated by one
    each time, so a drift of the guest's speed (udev's backlog, RCU, the
    host) lands on all of them alike instead of on whoever ran in the
    slower minute.  ``b`` is one contender's budget; the time budget grows
    with the number of contenders.  Besides the wall time, each call's CPU
    time in this process is kept (``time.process_time``: the kernel's work
    for the ioctls made in this process is included, sleeping is not),
    which shows what the caller's own code costs with far less noise.

    A contender whose call raises ``Unavailable`` or ``OSError`` drops out
    with what it timed so far; ``after_failure`` then cleans up after it.
    """
    names = list(fns)
    out = {name: Timed([], [], None) for name in names}

    def call(name: str) -> bool:
        try:
            fns[name]()
        except (cn.Unavailable, OSError) as exc:
            out[name] = out[name]._replace(failure=exc)
            after_failure()
            return False
        return True

    for _ in range(b.warmup):
        names = [name for name in names if call(name)]
    clock, cpu_clock = time.perf_counter, time.process_time
    start = clock()
    i = 0
    while names and i < b.max_n and (i < b.min_n or clock() - start < b.seconds * len(fns)):
        k = i % len(names)
        for name in [*names[k:], *names[:k]]:
            c0 = cpu_clock()
            t0 = clock()
            if not call(name):
                continue
            t1 = clock()
            out[name].cpu.append(cpu_clock() - c0)
            out[name].wall.append(t1 - t0)
        names = [name for name in names if out[name].failure is None]
        i += 1
    return out


def time_calls(fn: Callable[[], object], b: Budget) -> List[float]:
    for _ in range(b.warmup):
        fn()
    times: List[float] = []
    clock = time.perf_counter
    start = clock()
    while len(times) < b.max_n and (len(times) < b.min_n or clock() - start < b.seconds):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


# -- devices --------------------------------------------------------------------


def sweep(ctl: dm.Control) -> int:
    """Remove every pydmbench-* device; returns how many."""
    n = 0
    for d in ctl.list_devices(uuids=False):
        if d.name.startswith(PREFIX):
            try:
                ctl.remove(d.name, retry=5.0)
                n += 1
            except dm.DMError as exc:
                log(f"could not remove {d.name}: {exc}")
    return n


class Fixture:
    """A loop device, a linear device and a basic_target device over it."""

    def __init__(self, ctl: dm.Control, stack: ExitStack) -> None:
        self.notes: List[str] = []
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pydmbench-"))
        backing = os.path.join(tmp, "backing")
        with open(backing, "wb") as f:
            f.truncate(LOOP_BYTES)
        loop = stack.enter_context(loopdev.attach(backing))
        self.loop = loop.devno_str
        linear = f"{PREFIX}linear"
        ctl.create_device(linear, f"0 {SECTORS} linear {self.loop} 0")
        stack.callback(ctl.remove, linear, retry=5.0)
        basic = self._basic_target(ctl, stack)
        self.spec = cn.Spec(linear, basic, MESSAGE, f"{PREFIX}lifecycle",
                            f"0 {SECTORS} linear {self.loop} 0")

    def _basic_target(self, ctl: dm.Control, stack: ExitStack) -> Optional[str]:
        ko = os.environ.get("PYDM_BASIC_TARGET_KO")
        if not kmod.is_loaded("basic_target"):
            if not ko:
                self.notes.append("message: PYDM_BASIC_TARGET_KO unset, basic_target not loaded")
                return None
            kmod.load_module(ko)
            stack.callback(kmod.unload_module, "basic_target")
        name = f"{PREFIX}basic"
        ctl.create_device(name, f"0 {SECTORS} basic_target {self.loop} 0")
        stack.callback(ctl.remove, name, retry=5.0)
        return name


def grow_to(ctl: dm.Control, n: int, made: List[str]) -> int:
    """Create table-less devices until the kernel lists ``n``; uuids on half."""
    have = len(ctl.list_devices(uuids=False))
    i = len(made)
    while have < n:
        name = f"{PREFIX}l{i:05d}"
        ctl.create(name, uuid=f"PYDMBENCH-L{i:05d}" if i % 2 else None)
        made.append(name)
        have += 1
        i += 1
    return have


# -- the run ----------------------------------------------------------------------


class Run:
    def __init__(self, *, scale: float = 1.0, list_sizes: Sequence[int] = LIST_SIZES,
                 profile: bool = True,
                 progress: Optional[Callable[[Run], None]] = None, only: Optional[str] = None) -> None:
        self.progress = progress  # called after each operation (partial results)
        self.only = only  # None: everything; "devices" or "thin_status": that part
        self.scale = scale
        self.list_sizes = list_sizes
        self.profile = profile
        self.raw: report.Raw = {}
        # Lifecycles of the in-process contenders: CPU seconds per call.
        self.cpu: Dict[str, Dict[str, List[float]]] = {}
        self.list_retries: Dict[str, int] = {}
        self.notes: List[str] = []
        self.profiles: Dict[str, str] = {}

    def budget(self, b: Budget) -> Budget:
        return b.scaled(self.scale) if self.scale != 1.0 else b

    def measure(self, op: str, contenders: Sequence[Any], spec: cn.Spec,
                on_api: Optional[Callable[[Callable[[], object]], None]] = None) -> None:
        """Time ``op`` for every contender.  Lifecycles run in rounds, each
        contender's budget split across them and the order rotated: they
        take minutes, over which the guest's speed drifts (udev backlog,
        RCU), and one block per contender would hand the drift to whoever
        ran last.  Within a round the in-process contenders (api, pyfloor,
        libdm) take turns call by call (``time_interleaved``), and their CPU
        time per lifecycle is kept too.  The other operations take a second
        or so per contender and run in one block each: chopped into rounds
        or turns, each chunk starts with the caches full of the other
        contenders' work, which costs a Python caller's larger working set
        more than a C library's and is not what a loop of calls sees."""
        lifecycle = op.startswith("lifecycle")
        rounds = LIFECYCLE_ROUNDS if lifecycle else 1
        row: Dict[str, Any] = {}
        started = time.monotonic()
        if not lifecycle:  # lifecycles settle before each contender, below
            # udevd may still be working through uevents (the fixture's, or
            # an "add" for each listing device): before the timing, not during.
            settle_udev()
        try:
            for r in range(rounds):
                self._round(op, contenders, spec, r, rounds, row, on_api if r == 0 else None)
        finally:
            if lifecycle:
                _cleanup_lifecycle(spec)  # the last contender's, however it ended
        for name, samples in row.items():
            if isinstance(samples, list):
                log(f"{op:<16} {name:<10} median {report.fmt_seconds(sorted(samples)[len(samples) // 2]):>10} "
                    f"n={len(samples)}")
        log(f"{op}: {time.monotonic() - started:.1f}s")
        self.raw[op] = row
        if self.progress is not None:
            self.progress(self)

    def _round(self, op: str, contenders: Sequence[Any], spec: cn.Spec, r: int, rounds: int,
               row: Dict[str, Any], on_api: Optional[Callable[[Callable[[], object]], None]]) -> None:
        """Round ``r``: every available contender, the order rotated by ``r``.
        Before each lifecycle contender udev settles and whatever the one
        before left (or udev did late) is cleaned up."""
        lifecycle = op.startswith("lifecycle")
        k = r % len(contenders)
        order = [c for c in [*contenders[k:], *contenders[:k]]
                 if not isinstance(row.get(c.name), report.Unavailable)]
        together = [c for c in order if lifecycle and _in_process(c)]
        for c in order:
            if c in together[1:]:
                continue  # ran in turns with together[0]
            if lifecycle:
                settle_udev()
                _cleanup_lifecycle(spec)
            if c in together:
                self._turns(op, together, spec, r, rounds, row)
                continue
            try:
                samples = self._samples(c, op, spec, r, rounds, row, on_api)
            except (cn.Unavailable, OSError) as exc:
                row[c.name] = report.Unavailable(str(exc))
                log(f"{op} {c.name}: unavailable: {exc}")
                continue
            row.setdefault(c.name, []).extend(samples)

    def _turns(self, op: str, together: Sequence[Any], spec: cn.Spec, r: int, rounds: int,
               row: Dict[str, Any]) -> None:
        """One round of a lifecycle for the in-process contenders, in turns."""
        fns: Dict[str, Callable[[], object]] = {}
        for c in together:
            try:
                fns[c.name] = c.op(op, spec)
            except cn.Unavailable as exc:
                row[c.name] = report.Unavailable(str(exc))
                log(f"{op} {c.name}: unavailable: {exc}")
        if not fns:
            return
        b = self.budget(IN_PROCESS_LIFECYCLE)
        timed = time_interleaved(fns, b.share(r, rounds), lambda: _cleanup_lifecycle(spec))
        cpu = self.cpu.setdefault(op, {})
        for name, t in timed.items():
            if t.failure is not None:
                row[name] = report.Unavailable(str(t.failure))
                log(f"{op} {name}: unavailable: {t.failure}")
                continue
            row.setdefault(name, []).extend(t.wall)
            cpu.setdefault(name, []).extend(t.cpu)

    def _samples(self, c: Any, op: str, spec: cn.Spec, r: int, rounds: int,
                 row: Dict[str, Any], on_api: Optional[Callable[[Callable[[], object]], None]]) -> List[float]:
        """One round's timings of ``op`` by ``c``: its budget's share of ``rounds``."""
        lifecycle = op.startswith("lifecycle")
        if isinstance(c, cn.CFloor):
            # As many iterations as the api took (it runs its own loop).
            api = row.get("api")
            n = len(api) // (r + 1) if isinstance(api, list) and api else 20 // rounds
            n = min(max(n, 20 // rounds), 3000 if not lifecycle else 300 // rounds)
            return c.measure(op, spec, n, warmup=5 if not lifecycle else 2)
        fn = c.op(op, spec)
        if isinstance(c, cn.Command) and c.name == "pydmsetup":
            b = PYTHON_PROCESS
        elif isinstance(c, cn.Command):
            b = PROCESS_LIFECYCLE if lifecycle else PROCESS
        else:
            b = IN_PROCESS_LIFECYCLE if lifecycle else IN_PROCESS
        b = self.budget(b)
        if r >= b.max_n:  # fewer runs than rounds: one in each of the first max_n
            return []
        if on_api is not None and c.name == "api":
            on_api(fn)
        return time_calls(fn, b.share(r, min(rounds, b.max_n)))

    def run(self) -> Dict[str, Any]:
        api = cn.Api()
        ctl = api.nosync
        pyfloor = cn.PyFloor()
        everyone: List[Any] = [api, cn.CFloor(), pyfloor]
        try:
            everyone.append(cn.LibDm())
        except cn.Unavailable as exc:
            self.notes.append(f"libdm unavailable: {exc}")
        everyone += [cn.Command.dmsetup(), cn.Command.pydmsetup()]
        mode = "udevd running" if udev.udev_running() else "udevd not running"
        with ExitStack() as stack:
            stack.callback(api.close)
            stack.callback(pyfloor.close)
            leftovers = sweep(ctl)
            if leftovers:
                self.notes.append(f"removed {leftovers} leftover {PREFIX}* devices first")
            stack.callback(sweep, ctl)
            fx = Fixture(ctl, stack)
            self.notes += fx.notes
            spec = fx.spec
            if self.only in (None, "devices"):
                for op in SINGLE_OPS:
                    if op in ("table", "status"):
                        self.settle(op, ctl, api.op(op, spec), "DM_TABLE_STATUS", spec)
                    self.measure(op, everyone, spec)
                if self.profile:
                    self.profiles["info"] = profile(lambda: ctl.info(spec.linear), 300)
                for op in LIFECYCLE_OPS:
                    self.measure(op, everyone, spec)
                self.listing(ctl, everyone, spec)
            if self.only in (None, "thin_status"):
                self.thin_status(ctl, stack)
            if self.only in (None, "stats_print"):
                self.stats_print(ctl, [c for c in everyone if isinstance(c, cn.Command)])
        self.notes.append("version api: Control._ioctl(VERSION) - Control.version() caches its answer")
        self.notes.append(f"lifecycle: every contender loads '0 {SECTORS} linear <loop> 0'; "
                          "remove retries on EBUSY (udev workers probe new devices); "
                          "dmsetup/pydmsetup: 2 processes per lifecycle")
        return {"mode": mode}

    def listing(self, ctl: dm.Control, everyone: Sequence[Any], spec: cn.Spec) -> None:
        made: List[str] = []
        try:
            for n in self.list_sizes:
                t0 = time.monotonic()
                have = grow_to(ctl, n, made)
                log(f"{have} devices listed (created {len(made)} so far in {time.monotonic() - t0:.1f}s)")
                if have != n:
                    self.notes.append(f"list_{n}: the kernel listed {have} devices")
                op = report.list_op(n)
                self.settle(op, ctl, lambda: ctl.list_devices(uuids=False), "DM_LIST_DEVICES", spec)
                self.measure(op, everyone, spec, on_api=lambda fn, op=op: self._count_retries(ctl, fn, op))
                if self.profile and n == self.list_sizes[-1]:
                    self.profiles[op] = profile(lambda: ctl.list_devices(uuids=False), 20)
        finally:
            t0 = time.monotonic()
            for name in reversed(made):
                try:
                    ctl.remove(name)
                except dm.DMError as exc:
                    log(f"could not remove {name}: {exc}")
            log(f"removed {len(made)} listing devices in {time.monotonic() - t0:.1f}s")

    def thin_status(self, ctl: dm.Control, stack: ExitStack) -> None:
        """``thin_status_<N>``: the status of N thin volumes of one pool,
        raw (``ctl.status``) against typed (``...[0].parsed()``, a
        ThinStatus each), taking turns call by call.  Each call is N
        DM_TABLE_STATUS ioctls."""
        from pydevmapper import targets as t

        op = f"thin_status_{THIN_VOLUMES}"
        t0 = time.monotonic()
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=PREFIX))
        meta, data = (stack.enter_context(loopdev.attach(_sparse(os.path.join(tmp, name), size)))
                      for name, size in (("meta", 16 << 20), ("data", 64 << 20)))
        pool_name = f"{PREFIX}thinpool"
        pool = ctl.create_device(pool_name, dm.Table.single(
            (64 << 20) // 512, t.ThinPool(meta.path, data.path, 128, 0)))
        names = []
        for i in range(THIN_VOLUMES):
            ctl.message(pool.devno, 0, t.ThinPool.create_thin(i))
            name = f"{PREFIX}thin-{i}"
            ctl.create_device(name, dm.Table.single(2048, t.Thin(pool, i)))
            names.append(name)
        log(f"{op}: {THIN_VOLUMES} thin volumes made in {time.monotonic() - t0:.1f}s")
        try:
            status = ctl.status

            def raw() -> object:
                return [status(name) for name in names]

            def typed() -> object:
                return [status(name)[0].parsed() for name in names]

            timed = time_interleaved({"raw": raw, "typed": typed}, self.budget(THIN_STATUS))
            self.raw[op] = {name: tm.wall for name, tm in timed.items()}
            self.cpu[op] = {name: tm.cpu for name, tm in timed.items()}
            for name, tm in timed.items():
                log(f"{op:<16} {name:<10} median {report.fmt_seconds(sorted(tm.wall)[len(tm.wall) // 2]):>10} "
                    f"n={len(tm.wall)}")
        finally:
            for name in reversed(names):
                ctl.remove(name)
            ctl.remove(pool_name)
        if self.progress is not None:
            self.progress(self)

    def stats_print(self, ctl: dm.Control, commands: Sequence[Any]) -> None:
        """``stats_print_<N>``: the counters of N dm-stats regions of one
        device.  In the process, taking turns: ``api`` (``area_counters``,
        typed) and ``api_text`` (``region_text``, the kernel's text), each N
        DM_TARGET_MSG ioctls; then ``dmstats print --allregions`` as dmsetup
        and pydmsetup run it (one process; dmsetup 1.02.185 prints each
        region twice, so 2N messages and a listing)."""
        from pydevmapper import stats

        op = f"stats_print_{STATS_REGIONS}"
        name = f"{PREFIX}stats"
        ctl.create_device(name, f"0 {SECTORS} zero")
        try:
            for _ in range(STATS_REGIONS):
                stats.create_region(ctl, name, areas=4, program_id="dmstats")
            regions = stats.list_regions(ctl, name)

            def typed() -> object:
                return [stats.area_counters(ctl, name, r) for r in regions]

            def text() -> object:
                return [stats.region_text(ctl, name, r) for r in regions]

            timed = time_interleaved({"api": typed, "api_text": text}, self.budget(STATS_PRINT))
            self.raw[op] = {c: tm.wall for c, tm in timed.items()}
            self.cpu[op] = {c: tm.cpu for c, tm in timed.items()}
            for c in commands:
                budget = PYTHON_PROCESS if c.name == "pydmsetup" else PROCESS
                try:
                    self.raw[op][c.name] = time_calls(
                        lambda c=c: c.run(["stats", "print", "--allregions", name]), self.budget(budget))
                except cn.Unavailable as exc:
                    self.notes.append(f"{op}: {c.name} unavailable: {exc}")
            for c, walls in self.raw[op].items():
                log(f"{op:<16} {c:<10} median {report.fmt_seconds(sorted(walls)[len(walls) // 2]):>10} "
                    f"n={len(walls)}")
        finally:
            ctl.remove(name, retry=5.0)
        if self.progress is not None:
            self.progress(self)

    def _count_retries(self, ctl: dm.Control, fn: Callable[[], object], op: str) -> None:
        """Call once (the first call may grow the buffer), then count the
        replies that did not fit over the next calls."""
        fn()
        before = ctl.channel.buffer_retries
        for _ in range(5):
            fn()
        self.list_retries[op[len("list_"):]] = ctl.channel.buffer_retries - before

    def settle(self, op: str, ctl: dm.Control, fn: Callable[[], object], command: str,
               spec: cn.Spec) -> None:
        """Call the api's ``fn`` (untimed) until the reply buffer it sends for
        ``command`` stops changing; the floors then send that size too."""
        size, same = None, 0
        for _ in range(300):
            fn()
            now = ctl.channel.size_hints[command]
            same = same + 1 if now == size else 0
            size = now
            if same == 3:
                break
        assert size is not None
        spec.reply_size[op] = size
        self.notes.append(f"{op}: {size}-byte reply buffer (the api's, settled; the floors send it too)")


def _sparse(path: str, size: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _in_process(c: Any) -> bool:
    """A contender called in this process (api, pyfloor, libdm)."""
    return not isinstance(c, (cn.CFloor, cn.Command))


def settle_udev() -> None:
    """Let udevd finish the previous contender's uevents first: under TCG a
    backlog from the no-sync lifecycles lasts minutes, competes for the CPU
    and makes a cookie wait time out."""
    if udev.udev_running():
        subprocess.run(["udevadm", "settle", "--timeout=180"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cleanup_lifecycle(spec: cn.Spec) -> None:
    """No lifecycle device, and no /dev/mapper entry left for it."""
    with dm.Control(udev_sync=False) as ctl:
        if ctl.exists(spec.lifecycle_name):
            ctl.remove(spec.lifecycle_name, retry=5.0)
        ctl.sync_node(spec.lifecycle_name)


def profile(fn: Callable[[], object], n: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
    text = out.getvalue()
    return text[text.find("ncalls"):] if "ncalls" in text else text


# -- start-up of the CLI ------------------------------------------------------------


def startup(raw: report.Raw, n: int = 3) -> Dict[str, Any]:
    """Where pydmsetup's start-up goes: bare interpreter, site, imports, the call.

    ``dmsetup version`` and ``pydmsetup version`` come from the version
    operation already measured in ``raw``.
    """
    py = sys.executable
    runs = {
        "python -I -S -c pass (bare interpreter)": [py, "-I", "-S", "-c", "pass"],
        "python -c pass (interpreter + site)": [py, "-c", "pass"],
        "python -c 'import pydevmapper.cli.commands'": [py, "-c", "import pydevmapper.cli.commands"],
    }
    out: Dict[str, Any] = {"runs": {}}
    for label, name in (("dmsetup version", "dmsetup"), ("pydmsetup version", "pydmsetup")):
        samples = raw.get("version", {}).get(name)
        out["runs"][label] = (report.stats(samples) if isinstance(samples, list)
                              else {"median_s": None, "unavailable": "not measured"})
    for label, argv in runs.items():
        times = []
        try:
            for i in range(n + 1):
                t0 = time.perf_counter()
                res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
                if res.returncode != 0:
                    raise cn.Unavailable(f"exit {res.returncode}: {cn._last_line(res.stderr)}")
                if i:  # the first run warms the page cache
                    times.append(time.perf_counter() - t0)
            out["runs"][label] = report.stats(times)
        except (cn.Unavailable, OSError) as exc:
            out["runs"][label] = {"median_s": None, "unavailable": str(exc)}
        log(f"startup {label}: {report.fmt_seconds(out['runs'][label].get('median_s'))}")
    pydmsetup = cn.pydmsetup_argv()
    res = subprocess.run([pydmsetup[0], "-X", "importtime", *pydmsetup[1:], "version"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True)
    out["imports"] = top_imports(res.stderr)
    return out


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")


def top_imports(text: str, k: int = 10) -> List[List[Any]]:
    """Top-level imports (not nested in another) by cumulative microseconds."""
    top = []
    for line in text.splitlines():
        m = _IMPORT_LINE.match(line)
        if m and len(m.group(3)) == 1:
            top.append([m.group(4), int(m.group(2))])
    return sorted(top, key=lambda e: -e[1])[:k]
