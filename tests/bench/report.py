# SPDX-License-Identifier: LGPL-2.1-or-later
"""Statistics, ratios to the C floor, target checks, the table and the JSON.

Pure functions over per-iteration timings: nothing here touches the kernel,
so the unit tier checks the arithmetic and the layout.

Raw input, as the runner collects it::

    {operation: {contender: [seconds, ...] | Unavailable(reason)}}

``summarize`` turns it into the JSON's ``results``::

    {operation: {contender: {"median_s", "min_s", "max_s", "n", "ratio_to_c"}}}

plus ``"cpu_median_s"`` where the runner also kept the CPU time the
calling process spent per call (the in-process contenders' lifecycles)::

    {operation: {contender: [cpu seconds, ...]}}

An unavailable contender keeps its row, with ``None`` numbers and the reason.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

CONTENDERS = ("api", "c", "libdm", "dmsetup", "pydmsetup")
# Not a contender: the same ioctls from bare Python, the floor any Python
# binding stands on.  Shown after the C floor.
PYFLOOR = "pyfloor"
_ORDER = ("api", "c", PYFLOOR, "libdm", "dmsetup", "pydmsetup")
SINGLE_DEVICE_OPS = ("version", "info", "table", "status", "message")
LIFECYCLE_OPS = ("lifecycle_nosync", "lifecycle_udev")
LIST_PREFIX = "list_"

# The targets.
API_TO_C_MAX = 1.3
DMSETUP_TO_API_MIN = 8.0
# Listing is linear in N when the cost per device at the largest N is within
# this factor of the cost per device at the next smaller N.
LINEARITY_MAX = 1.5
# Typed statuses (pydevmapper.targets) against the raw fetch: the goal.
TYPED_TO_RAW_MAX = 1.5


class Unavailable(NamedTuple):
    """A contender that could not run an operation, and why."""

    reason: str


Raw = Dict[str, Dict[str, Union[List[float], Unavailable]]]
Results = Dict[str, Dict[str, Dict[str, Any]]]
Cpu = Dict[str, Dict[str, List[float]]]


def list_op(n: int) -> str:
    return f"{LIST_PREFIX}{n}"


def list_sizes(results: Results) -> List[int]:
    return sorted(int(op[len(LIST_PREFIX):]) for op in results if op.startswith(LIST_PREFIX))


def stats(times: Sequence[float]) -> Dict[str, Any]:
    if not times:
        raise ValueError("no samples")
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "n": len(times),
    }


def summarize(raw: Raw, cpu: Optional[Cpu] = None) -> Results:
    """Median, min, max and count per contender; each median over the C
    floor's; the median CPU time per call where ``cpu`` has it."""
    results: Results = {}
    for op, by_contender in raw.items():
        row: Dict[str, Dict[str, Any]] = {}
        for name, samples in by_contender.items():
            if isinstance(samples, Unavailable):
                row[name] = {"median_s": None, "min_s": None, "max_s": None, "n": 0,
                             "ratio_to_c": None, "unavailable": samples.reason}
            else:
                row[name] = stats(samples)
                cpu_samples = (cpu or {}).get(op, {}).get(name)
                if cpu_samples:
                    row[name]["cpu_median_s"] = statistics.median(cpu_samples)
        floor = row.get("c", {}).get("median_s")
        for entry in row.values():
            if entry["median_s"] is not None:
                entry["ratio_to_c"] = entry["median_s"] / floor if floor else None
        results[op] = {name: row[name] for name in _ordered(row)}
    return results


def _ordered(names: Any) -> List[str]:
    known = [c for c in _ORDER if c in names]
    return known + sorted(n for n in names if n not in _ORDER)


def median(results: Results, op: str, contender: str) -> Optional[float]:
    return results.get(op, {}).get(contender, {}).get("median_s")


def per_device(results: Results) -> Dict[str, Dict[str, Optional[float]]]:
    """Listing: median seconds per listed device, by contender and N."""
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for n in list_sizes(results):
        for name, entry in results[list_op(n)].items():
            m = entry["median_s"]
            out.setdefault(name, {})[str(n)] = m / n if m is not None else None
    return out


class Check(NamedTuple):
    target: str
    met: Optional[bool]  # None: could not be measured
    detail: str

    def as_json(self) -> Dict[str, Any]:
        return {"target": self.target, "met": self.met, "detail": self.detail}


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def check_targets(results: Results, list_retries: Optional[Dict[str, int]] = None) -> List[Check]:
    """The issue's targets, each met, missed, or not measurable (and why)."""
    checks: List[Check] = []
    for op in (*SINGLE_DEVICE_OPS, *(list_op(n) for n in list_sizes(results))):
        if op not in results:
            continue
        r = results[op].get("api", {}).get("ratio_to_c")
        detail = "not measured" if r is None else f"{r:.2f}x"
        floor = results[op].get(PYFLOOR, {}).get("ratio_to_c")
        if r is not None and floor is not None:
            # How much of the gap is CPython's, how much is pydevmapper's.
            detail += f" (bare Python ioctl: {floor:.2f}x C; api: {r / floor:.2f}x that)"
        checks.append(Check(f"{op}: api <= {API_TO_C_MAX}x C", None if r is None else r <= API_TO_C_MAX,
                            detail))
    for op in LIFECYCLE_OPS:
        if op not in results:
            continue
        speedup = _ratio(median(results, op, "dmsetup"), median(results, op, "api"))
        detail = (_why_missing(results, op, ("api", "dmsetup")) if speedup is None
                  else f"{speedup:.1f}x faster")
        ceiling = _ratio(median(results, op, "dmsetup"), median(results, op, PYFLOOR))
        if speedup is not None and ceiling is not None:
            # The bare ioctls (and, with udev, the cookie waits) against
            # dmsetup: what no binding can beat.
            detail += f" (bare Python ioctls: {ceiling:.1f}x faster)"
        checks.append(Check(f"{op}: api >= {DMSETUP_TO_API_MIN:g}x faster than dmsetup",
                            None if speedup is None else speedup >= DMSETUP_TO_API_MIN, detail))
    for op in results:
        r = _ratio(median(results, op, "api"), median(results, op, "libdm"))
        if r is not None:
            detail = f"{r:.2f}x libdm"
            cpu_api, cpu_libdm = (results[op][n].get("cpu_median_s") for n in ("api", "libdm"))
            if cpu_api is not None and cpu_libdm is not None:
                # Steadier than the wall time, which waits on RCU and udev.
                detail += (f" (CPU in the calling process: {fmt_seconds(cpu_api)} against "
                           f"{fmt_seconds(cpu_libdm)}, {cpu_api / cpu_libdm:.2f}x)")
            checks.append(Check(f"{op}: api no slower than libdm", r <= 1.0, detail))
    for op in results:
        if op.startswith("thin_status_"):
            r = _ratio(median(results, op, "typed"), median(results, op, "raw"))
            checks.append(Check(f"{op}: typed status <= {TYPED_TO_RAW_MAX}x raw",
                                None if r is None else r <= TYPED_TO_RAW_MAX,
                                "not measured" if r is None else f"{r:.2f}x"))
    sizes = list_sizes(results)
    if len(sizes) >= 2:
        small, big = sizes[-2], sizes[-1]
        pd = per_device(results).get("api", {})
        growth = _ratio(pd.get(str(big)), pd.get(str(small)))
        checks.append(Check(f"listing linear in N: api per-device cost at N={big} <= "
                            f"{LINEARITY_MAX}x that at N={small}",
                            None if growth is None else growth <= LINEARITY_MAX,
                            "not measured" if growth is None else f"{growth:.2f}x"))
    if list_retries:
        worst = max(list_retries.values(), default=0)
        checks.append(Check("listing: no buffer-growth retries after the first call", worst == 0,
                            ", ".join(f"N={n}: {k}" for n, k in sorted(list_retries.items(),
                                                                        key=lambda kv: int(kv[0])))))
    return checks


def _why_missing(results: Results, op: str, names: Sequence[str]) -> str:
    reasons = [f"{n}: {results[op].get(n, {}).get('unavailable', 'not run')}"
               for n in names if median(results, op, n) is None]
    return "; ".join(reasons) or "not measured"


# -- formatting ---------------------------------------------------------------------


def fmt_seconds(s: Optional[float]) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}" if s / scale < 1000 else f"{s / scale:.0f} {unit}"
    return f"{s * 1e9:.3g} ns"


def fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def format_table(doc: Dict[str, Any]) -> str:
    """The human table: one row per operation and contender, then listing,
    targets, start-up and notes."""
    results: Results = doc["results"]
    lines = [f"pydevmapper benchmark - kernel {doc.get('kernel', '?')}, {doc.get('mode', '')}".rstrip(", "),
             "times per operation: median [min .. max] over n iterations; x C = median / C floor median", ""]
    head = f"{'operation':<17} {'contender':<10} {'median':>10} {'min':>10} {'max':>10} {'n':>5} {'x C':>8}"
    lines += [head, "-" * len(head)]
    for op, row in results.items():
        for name, e in row.items():
            if e["median_s"] is None:
                lines.append(f"{op:<17} {name:<10} unavailable: {e.get('unavailable', '')}")
                continue
            lines.append(f"{op:<17} {name:<10} {fmt_seconds(e['median_s']):>10} {fmt_seconds(e['min_s']):>10} "
                         f"{fmt_seconds(e['max_s']):>10} {e['n']:>5} {fmt_ratio(e['ratio_to_c']):>8}")
            op = ""
    cpu_rows = [(op, name, e["cpu_median_s"]) for op, row in results.items()
                for name, e in row.items() if e.get("cpu_median_s") is not None]
    if cpu_rows:
        lines += ["", "CPU time of the calling process per call (median; its share of the "
                      "kernel's work included, sleeps not)"]
        last = None
        for op, name, cpu in cpu_rows:
            lines.append(f"{op if op != last else '':<17} {name:<10} {fmt_seconds(cpu):>10}")
            last = op
    pd = per_device(results)
    sizes = list_sizes(results)
    if sizes:
        lines += ["", "listing: median cost per device (median / N)"]
        lines.append(f"{'N':>6} " + " ".join(f"{n:>10}" for n in _ordered(pd)))
        for n in sizes:
            lines.append(f"{n:>6} " + " ".join(f"{fmt_seconds(pd[c].get(str(n))):>10}" for c in _ordered(pd)))
    if doc.get("targets"):
        lines += ["", "targets"]
        for t in doc["targets"]:
            mark = {True: "MET   ", False: "MISSED", None: "N/A   "}[t["met"]]
            lines.append(f"  {mark} {t['target']}: {t['detail']}")
    startup = doc.get("startup")
    if startup:
        lines += ["", "start-up (one process, median of n)"]
        for label, e in startup.get("runs", {}).items():
            if e.get("median_s") is None:
                lines.append(f"  {label:<44} unavailable: {e.get('unavailable', '')}")
            else:
                lines.append(f"  {label:<44} {fmt_seconds(e['median_s']):>10} (n={e['n']})")
        imports = startup.get("imports")
        if imports:
            lines.append("  largest imports of `pydmsetup version` (-X importtime, cumulative):")
            for name, us in imports:
                lines.append(f"    {name:<42} {fmt_seconds(us / 1e6):>10}")
    for note in doc.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def document(kernel: str, mode: str, raw: Raw, *, list_retries: Optional[Dict[str, int]] = None,
             startup: Optional[Dict[str, Any]] = None, notes: Sequence[str] = (),
             profiles: Optional[Dict[str, str]] = None, cpu: Optional[Cpu] = None) -> Dict[str, Any]:
    """The JSON document (``--json``)."""
    results = summarize(raw, cpu)
    doc: Dict[str, Any] = {"kernel": kernel, "mode": mode, "results": results,
                           "listing_per_device_s": per_device(results)}
    if list_retries is not None:
        doc["list_buffer_retries"] = list_retries
    doc["targets"] = [c.as_json() for c in check_targets(results, list_retries)]
    if startup is not None:
        doc["startup"] = startup
    if profiles:
        doc["profiles"] = profiles
    doc["notes"] = list(notes)
    return doc
