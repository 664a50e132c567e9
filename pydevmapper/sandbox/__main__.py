# SPDX-License-Identifier: LGPL-2.1-or-later
"""CLI for the sandbox.

    python -m pydevmapper.sandbox fetch [--kernel 5.10|6.1|6.12|latest]
    python -m pydevmapper.sandbox run [--kernel 5.10|6.1|6.12|latest] [--no-udev] [--timeout S] -- CMD ARGS...
    python -m pydevmapper.sandbox info [--kernel 5.10|6.1|6.12|latest]

"latest" is the newest series Debian's trixie and its backports carry; the
kernel a series resolved to is printed on stderr.

``run`` exits with the command's exit status (124: timeout, 125: the guest
died without reporting one).  The command's output streams to stdout;
sandbox messages go to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .errors import SandboxError
from .guest import DEFAULT_PRELOAD, host_has_device_mapper, kvm_usable, run_in_guest, run_native
from .kernels import DEFAULT_SERIES, SERIES, ensure_kernel, fetch, module_state, static_busybox


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pydevmapper.sandbox", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fetch", help="download/unpack/patch a kernel into the cache (reused if present)")
    f.add_argument("--kernel", choices=sorted(SERIES), default=DEFAULT_SERIES)

    sub.add_parser("fetch-peers", help="download cryptsetup's test scripts (the installed version's) into the cache")

    i = sub.add_parser("info", help="show the cached kernel and host capabilities")
    i.add_argument("--kernel", choices=sorted(SERIES), default=DEFAULT_SERIES)

    r = sub.add_parser("run", help="run a command in a guest (or natively if this host has device-mapper)")
    r.add_argument("--kernel", choices=sorted(SERIES), default=DEFAULT_SERIES)
    r.add_argument("--no-udev", dest="udev", action="store_false", help="stop udevd in the guest before the command")
    r.add_argument("--timeout", type=float, default=1800.0, help="seconds before the guest is killed (exit 124)")
    r.add_argument("--memory", default="2G")
    r.add_argument("--cpus", type=int, default=2)
    r.add_argument("--no-build", dest="build", action="store_false", help="don't build csrc/ (basic_target.ko)")
    r.add_argument("--preload", action="append", metavar="MOD",
                   help=f"modprobe MOD in the guest first (repeatable; default: {' '.join(DEFAULT_PRELOAD)})")
    r.add_argument("--no-preload", action="store_true", help="load no modules before the command")
    r.add_argument("--env", action="append", default=[], metavar="K=V", help="extra environment for the command")
    r.add_argument("--rwdir", action="append", default=[], metavar="DIR",
                   help="a host directory the guest may write (the rest of the host is read-only there)")
    r.add_argument("-v", "--verbose", action="store_true", help="print the guest wrapper log and vng console")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--native", dest="where", action="store_const", const="native",
                       help="run on this host (needs device-mapper and root)")
    where.add_argument("--guest", dest="where", action="store_const", const="guest", help="always boot a guest")
    r.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    return p


def _cmd_run(a: argparse.Namespace) -> int:
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    if not argv:
        raise SandboxError("nothing to run; usage: run [options] -- CMD ARGS...")
    env: dict[str, str] = {}
    for kv in a.env:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SandboxError(f"--env wants K=V, got {kv!r}")
        env[k] = v
    where = a.where
    if where is None:  # auto: native only when it can really work here
        where = "native" if os.geteuid() == 0 and host_has_device_mapper() else "guest"
    if where == "native":
        _log("sandbox: host has device-mapper; running natively")
        return run_native(argv, build=a.build, extra_env=env, log=_log)

    kernel = ensure_kernel(a.kernel)
    _log(f"sandbox: kernel {a.kernel}: {kernel.version} (Linux {kernel.line}, Debian {kernel.release})")
    preload = () if a.no_preload else tuple(a.preload or DEFAULT_PRELOAD)
    res = run_in_guest(
        argv, kernel, udev=a.udev, timeout=a.timeout, memory=a.memory, cpus=a.cpus, preload=preload,
        build=a.build, extra_env=env, sink=sys.stdout.buffer,
        vng_args=[*(["--verbose"] if a.verbose else []), *(f"--rwdir={os.path.abspath(d)}" for d in a.rwdir)],
        log=_log,
    )  # fmt: skip
    if a.verbose:
        _log("---- guest wrapper log ----\n" + res.guest_log + "---- vng console ----\n" + res.console)
    for note in res.notes:
        _log(f"sandbox: {note}")
    boot = f"{res.boot_seconds:.1f}s" if res.boot_seconds is not None else "?"
    _log(f"sandbox: kernel {res.kernel} ({res.accel}, udev={'on' if a.udev else 'off'}): "
         f"boot {boot}, total {res.elapsed:.1f}s, exit {res.returncode}")
    return res.returncode


def _cmd_info(a: argparse.Namespace) -> int:
    k = ensure_kernel(a.kernel)
    print(f"kernel:      {k.version} (Linux {k.line}, Debian {k.release})")
    print(f"build root:  {k.buildroot or 'the host'}")
    print(f"vmlinuz:     {k.vmlinuz}\nmodules:     {k.modules_dir}\nkdir:        {k.kdir}")
    for mod in ("dm-mod", "loop"):
        print(f"{mod + ':':<12} {module_state(k, mod)}")
    print(f"host dm:     {host_has_device_mapper()}\nkvm usable:  {kvm_usable(k.vmlinuz)}")
    return 0


def _terminate(signum: int, _frame: object) -> None:
    # Turn SIGTERM/SIGHUP into SystemExit so run_in_guest's `finally` kills
    # the qemu session and removes the rwdir and the module's build
    # directory (default handlers would orphan qemu: it runs in its own
    # session so ^C on a terminal doesn't race us).
    raise SystemExit(128 + signum)


def main(args: list[str] | None = None) -> int:
    a = _parser().parse_args(args)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        if a.cmd == "fetch":
            k = fetch(a.kernel, log=_log)
            static_busybox(log=_log)  # virtme-ng's initramfs needs one; fetch it now, not mid-run
            print(f"{k.series}: {k.version} (Linux {k.line}, Debian {k.release})")
            print(f"  vmlinuz {k.vmlinuz}\n  modules {k.modules_dir}\n  kdir    {k.kdir}")
            return 0
        if a.cmd == "fetch-peers":
            from .peers import fetch_cryptsetup_tests

            print(fetch_cryptsetup_tests(log=_log))
            return 0
        if a.cmd == "info":
            return _cmd_info(a)
        return _cmd_run(a)
    except SandboxError as e:
        _log(f"sandbox: error: {e}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
