# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boot a cached kernel under virtme-ng and run one command in it.

Design notes (the "why"):

* One boot runs one argv (normally one pytest session): booting costs
  ~10-30 s under TCG and a Python start ~2 s in the guest.
* The guest sees the host root read-only over 9p (writes go to tmpfs-backed
  overlays), so python, the venv and the repo are all visible at their host
  paths.  The one writable host directory is a per-run temp dir passed as
  ``--rwdir``; it lives under the cache, not /tmp or /var, because the guest
  overlays /tmp and masks parts of /var.
* That root is mounted without the page cache (virtme-ng's choice: the
  host may change it), so every Python start reads the interpreter and its
  imports over 9p again: 2-4 s under TCG on 6.12, 7-11 s on 5.10.  The
  trees Python reads - its prefix, the venv, the working tree - come a
  second time from a read-only export mounted with ``cache=loose`` and are
  bound over their paths: 1-2.5 s.  The guest may not see a change the
  host makes there while it runs: what runs beside a guest (the test
  command's host tiers) writes only build products the guest does not read.
* The console stream drops and interleaves output, so the command's output
  and exit status come back through files in that rwdir.  vng's own exit
  status is only cross-checked.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .build import built_module
from .debian import cache_dir
from .errors import Log, SandboxError, find_tool, require_tool
from .kernels import Kernel, static_busybox

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PRELOAD = ("dm-mod", "loop")
EXIT_TIMEOUT = 124  # like timeout(1)
EXIT_NO_STATUS = 125  # guest died / crashed before the command finished
BOOT_ATTEMPTS = 3  # boots tried while the guest dies before the command starts
CACHED_TAG = "pydm-host"  # the host root exported again, mounted with the page cache
CACHED_MOUNT = "/run/pydm-host"
CACHED_EXPORT = (f"-fsdev local,id={CACHED_TAG},path=/,security_model=none,readonly=on,multidevs=remap "
                 f"-device virtio-9p-pci,fsdev={CACHED_TAG},mount_tag={CACHED_TAG}")


@dataclass
class GuestResult:
    """How a command ran in the guest (or natively): its exit status (124: timed out, 125: the guest
    died first), its output (stdout and stderr interleaved), the guest wrapper's log, the
    console, host wall time and guest boot time, the accelerator and kernel, notes, and
    ``started`` (False: the guest ended before the command began)."""

    returncode: int
    output: bytes  # the command's stdout+stderr, in order
    guest_log: str  # the in-guest wrapper's own log (udev, modprobe, timings)
    console: str  # vng/qemu/kernel console; only useful when something broke
    elapsed: float  # host wall time, vng start to exit
    boot_seconds: float | None  # guest uptime when the command started
    accel: str
    kernel: str
    notes: list[str] = field(default_factory=list[str])
    started: bool = True  # False: the guest ended before the command began


# --------------------------------------------------------------------------
# host capabilities


def host_has_device_mapper() -> bool:
    """True if this host kernel can do device-mapper right now (or after modprobe).

    A /dev/mapper/control node existing proves nothing (dmsetup or a test
    may mknod it on a kernel without DM; opening it then fails with ENODEV),
    so ask the kernel: /proc/misc, or an actual open of the node.
    """
    try:
        os.close(os.open("/dev/mapper/control", os.O_RDWR))
        return True
    except OSError:
        pass
    try:
        if any(line.split()[-1:] == ["device-mapper"] for line in Path("/proc/misc").read_text().splitlines()):
            return True
    except OSError:
        pass
    # Loadable?  Needs module support (/proc/modules) and modprobe agreeing.
    modprobe = find_tool("modprobe")
    if modprobe and Path("/proc/modules").exists():
        res = subprocess.run([modprobe, "-n", "-q", "dm_mod"], capture_output=True, check=False)
        return res.returncode == 0
    return False


# What qemu prints when the host's KVM cannot set up a vCPU (nested hosts).
_KVM_BROKEN = "failed to set MSR"
# The kernel's first console line, and how long KVM gets to print it (under
# TCG it takes well under a second; a loaded host may start qemu slowly).
_KVM_BANNER = b"Linux version"
_KVM_PROBE_SECONDS = 8.0


def kvm_usable(vmlinuz: Path) -> bool:
    """Whether qemu can actually run this kernel under KVM here.

    /dev/kvm existing and opening isn't enough: on some nested hosts qemu
    aborts at vCPU setup ("failed to set MSR ..."), on others the vCPU
    starts and never runs a guest instruction (qemu spins, the console stays
    empty).  So boot the kernel with no root file system and wait for its
    first console line: a fraction of a second where KVM works, the whole
    wait where it doesn't.  Override with PYDM_SANDBOX_ACCEL=kvm|tcg.
    """
    forced = os.environ.get("PYDM_SANDBOX_ACCEL", "").lower()
    if forced in ("kvm", "tcg"):
        return forced == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    qemu = find_tool("qemu-system-x86_64")
    if qemu is None:
        return False
    argv = [qemu, "-accel", "kvm", "-cpu", "host", "-nodefaults", "-display", "none", "-m", "256",
            "-no-reboot", "-serial", "stdio", "-kernel", str(vmlinuz), "-append", "console=ttyS0 panic=-1"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    deadline = time.monotonic() + _KVM_PROBE_SECONDS
    seen = b""
    try:
        while _KVM_BANNER not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                return False
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return False  # qemu exited without a banner: KVM is broken
            seen = (seen + chunk)[-4096:]
        return True
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def find_vng() -> str:
    # Prefer the vng beside the running interpreter (the venv's), so a venv
    # works without being "activated" and without vng on PATH.
    beside = Path(sys.executable).parent / "vng"
    if os.access(beside, os.X_OK):
        return str(beside)
    return require_tool("vng")


def _vng_env(vng: str) -> dict[str, str]:
    """The host environment with vng's own directory first on PATH: vng
    starts ``virtme-run`` by name through a shell, and a venv that was not
    activated (as scripts/setup-host.sh leaves it) is not on PATH."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return dict(os.environ, PATH=os.pathsep.join([os.path.dirname(vng), path]))


def check_host(*, udev: bool) -> None:
    """Fail early, naming every missing tool and how to install it."""
    missing: list[str] = []
    for tool in ("qemu-system-x86_64", "modprobe", "depmod") + (("udevadm",) if udev else ()):
        try:
            require_tool(tool)
        except SandboxError as e:
            missing.append(str(e))
    try:
        find_vng()
    except SandboxError as e:
        missing.append(str(e))
    if missing:
        raise SandboxError(
            "the sandbox host is missing tools (or run scripts/setup-host.sh):\n  " + "\n  ".join(missing)
        )


def compile_bytecode(dirs: Sequence[Path] = (REPO / "pydevmapper", REPO / "tests")) -> None:
    """Bring the repo's .pyc files up to date on the host, before a boot.

    The guest cannot write the repo, so a module whose .pyc is missing or
    stale is compiled from source in every guest process that imports it:
    ~0.1 s per large module under TCG, paid again by every pydmsetup start
    the benchmark times.  A fresh clone has no .pyc at all; an installed
    package got them from pip.  Unwritable directories are skipped quietly.
    """
    import compileall

    for d in dirs:
        if d.is_dir():
            compileall.compile_dir(str(d), quiet=2)


# --------------------------------------------------------------------------
# the in-guest wrapper


def _env_exports(extra: dict[str, str]) -> dict[str, str]:
    """Environment for the guest command.

    vng does not forward the host environment, so pass what a test run
    needs: PATH (pyenv shims, the venv), the venv/python knobs, locale.
    """
    env: dict[str, str] = {}
    # Put this interpreter's bin dir (the venv's) first: a pyenv *shim*
    # spawns a dozen processes and takes ~30 s per `python3` under TCG,
    # the real binary ~2 s.
    dirs = [os.path.dirname(sys.executable), *os.environ.get("PATH", "/usr/bin:/bin").split(":"), "/usr/sbin", "/sbin"]
    env["PATH"] = ":".join(dict.fromkeys(d for d in dirs if d))
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "LANG", "LC_ALL", "PYENV_VERSION", "HOME"):
        if key in os.environ:
            env[key] = os.environ[key]
    if sys.prefix != sys.base_prefix:  # running from a venv that wasn't "activated"
        env.setdefault("VIRTUAL_ENV", sys.prefix)
    # The guest can't write the repo (read-only 9p); don't even try.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYDM_IN_GUEST"] = "1"
    env.update(extra)
    return env


def cached_dirs(cwd: str) -> list[str]:
    """The trees every Python start in the guest reads, outermost first, none
    inside another: the interpreter's prefix (only its standard library when
    that prefix holds the whole system, as /usr does), the venv and *cwd*."""
    base = sys.base_prefix
    if base in ("/", "/usr", "/usr/local"):
        base = sysconfig.get_paths()["stdlib"]
    dirs = sorted({os.path.realpath(d) for d in (base, sys.prefix, cwd)})
    kept: list[str] = []
    for d in dirs:  # sorted: a parent comes before what it holds
        if d != "/" and not any(d.startswith(k + "/") for k in kept):
            kept.append(d)
    return kept


def _wrapper_script(
    rwdir: Path, argv: Sequence[str], *, cwd: str, env: dict[str, str], udev: bool, preload: Sequence[str]
) -> str:
    q = shlex.quote
    cached = " ".join(q(d) for d in cached_dirs(cwd))
    exports = "\n".join(f"export {k}={q(v)}" for k, v in env.items())
    mods = " ".join(q(m) for m in preload)
    want_udev = "1" if udev else "0"
    # POSIX sh only: the guest's /bin/sh is the host's (dash on Debian).
    return f"""\
# generated by pydevmapper.sandbox.guest; runs inside the guest as --exec
R={q(str(rwdir))}
exec >"$R/guest.log" 2>&1 </dev/null
echo "kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)"
udevd_pids() {{
    # builtin read, not cat: every fork costs ~10 ms under TCG.  A killed
    # udevd stays a zombie until its parent reaps it: not running, skipped.
    for p in /proc/[0-9]*; do
        st=; read -r st 2>/dev/null <"$p/stat"
        case "$st" in
            *") Z "*) ;;
            *"(systemd-udevd) "*|*"(udevd) "*) echo "${{p#/proc/}}";;
        esac
    done
}}
udevd_gone_within() {{  # tenths of a second
    i=0
    while [ -n "$(udevd_pids)" ] && [ $i -lt "$1" ]; do sleep 0.1; i=$((i+1)); done
    [ -z "$(udevd_pids)" ]
}}
if [ {want_udev} = 1 ]; then
    if [ -z "$(udevd_pids)" ]; then
        echo "PYDM: udev requested but no udevd runs in the guest (is udev installed on the host?)"
        echo 98 >"$R/status.tmp" && mv "$R/status.tmp" "$R/status"; exit 98
    fi
    udevadm settle --timeout=30 || echo "udevadm settle failed"
    export PYDM_GUEST_UDEV=1
else
    # virtme-ng starts udevd when the host has it; stop it so nothing
    # creates /dev/mapper/<name> links or reacts to uevents.
    if [ -n "$(udevd_pids)" ]; then
        udevadm control --exit 2>/dev/null || kill $(udevd_pids)
        # Under slow emulation udevd can take longer than this to finish its
        # workers; then it is killed, and that too takes a moment.
        udevd_gone_within 100 || {{ kill -9 $(udevd_pids) 2>/dev/null; udevd_gone_within 50; }}
    fi
    if [ -n "$(udevd_pids)" ]; then
        echo "PYDM: could not stop udevd"
        echo 97 >"$R/status.tmp" && mv "$R/status.tmp" "$R/status"; exit 97
    fi
    # udevd leaves its control socket behind; libdevmapper (dmsetup) takes
    # that as "udev is running" and then waits forever for udev cookies.
    rm -f /run/udev/control
    export PYDM_GUEST_UDEV=0
fi
echo "udev=$PYDM_GUEST_UDEV"
# The read-only trees Python reads, from the cached export (see the module
# doc).  A tree holding a mount of its own (an rwdir) is left as it is: a
# bind over it would hide that mount.
C={CACHED_MOUNT}
opts=ro,trans=virtio,version=9p2000.L,access=any,msize=524288,cache=loose
if mkdir -p "$C" && mount -t 9p -o "$opts" {CACHED_TAG} "$C"; then
    for d in {cached}; do
        if awk -v d="$d" '$2 == d || index($2, d "/") == 1 {{ m = 1 }} END {{ exit !m }}' /proc/mounts; then
            echo "PYDM: $d holds a mount; read uncached"
        else
            mount --bind "$C$d" "$d" || echo "PYDM: could not bind $C$d over $d"
        fi
    done
else
    echo "PYDM: no cached export; Python reads over the uncached root"
fi
for m in {mods}; do modprobe "$m" || echo "modprobe $m failed"; done
{exports}
cd {q(cwd)} || cd /
echo "start uptime $(cut -d' ' -f1 /proc/uptime)"
{shlex.join(argv)} >"$R/output" 2>&1
rc=$?
echo "end uptime $(cut -d' ' -f1 /proc/uptime) rc=$rc"
echo "$rc" >"$R/status.tmp" && mv "$R/status.tmp" "$R/status"
sync
exit "$rc"
"""


class _Tail(threading.Thread):
    """Copy a file's growth to *sink* while the guest writes it over 9p."""

    def __init__(self, path: Path, sink: BinaryIO | None) -> None:
        super().__init__(daemon=True)
        self.path, self.sink = path, sink
        self.data = bytearray()
        self.stop = threading.Event()

    def _pump(self, fh: BinaryIO) -> None:
        while chunk := fh.read(65536):
            self.data += chunk
            if self.sink is not None:
                self.sink.write(chunk)
                self.sink.flush()

    def run(self) -> None:
        fh: BinaryIO | None = None
        try:
            while True:
                stopping = self.stop.is_set()  # read before the last drain
                if fh is None and self.path.exists():
                    fh = open(self.path, "rb")  # noqa: SIM115 - held across loop turns, closed below
                if fh is not None:
                    self._pump(fh)
                if stopping:
                    return
                self.stop.wait(0.2)
        finally:
            if fh is not None:
                fh.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # vng runs qemu as a child; kill the whole session so no qemu survives.
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # vng may have exited while qemu lingers in the group; sweep it.
            os.killpg(proc.pid, signal.SIGKILL)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue
        return


# --------------------------------------------------------------------------
# public entry points


def run_in_guest(
    argv: Sequence[str],
    kernel: Kernel,
    *,
    udev: bool = True,
    timeout: float = 1800.0,
    memory: str = "2G",
    cpus: int = 2,
    preload: Sequence[str] = DEFAULT_PRELOAD,
    build: bool = True,
    extra_env: dict[str, str] | None = None,
    cwd: str | None = None,
    sink: BinaryIO | None = None,
    vng_args: Sequence[str] = (),
    log: Log = print,
) -> GuestResult:
    """Boot *kernel*, run *argv* in it, return its exit status and output.

    Output is streamed to *sink* (e.g. sys.stdout.buffer) as it arrives.
    Nothing is left behind: the rwdir is removed and the qemu process group
    is killed on timeout or error.
    """
    if not argv:
        raise SandboxError("no command given to run in the guest")
    check_host(udev=udev)
    env = dict(extra_env or {})
    with contextlib.ExitStack() as stack:
        if build:
            ko = stack.enter_context(built_module(kernel.kdir, kernel.version, buildroot=kernel.buildroot, log=log))
            if ko is not None:
                env["PYDM_BASIC_TARGET_KO"] = str(ko)
        compile_bytecode()
        busybox = static_busybox(log=log)
        accel = "kvm" if kvm_usable(kernel.vmlinuz) else "tcg"
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            result = _boot(argv, kernel, busybox, accel, udev=udev, timeout=timeout, memory=memory, cpus=cpus,
                           preload=preload, env=env, cwd=cwd, sink=sink, vng_args=vng_args)
            if result.started or attempt == BOOT_ATTEMPTS:
                return result
            # The command never ran, so this is no test result: a guest that
            # dies while booting (seen once in CI, under TCG) is booted again.
            log(f"sandbox: boot {attempt} of {BOOT_ATTEMPTS} failed before the command started; booting again")
            for note in result.notes:
                log(f"sandbox: {note}")
            if accel == "kvm" and any(_KVM_BROKEN in note for note in result.notes):
                # The probe can pass on a loaded host where KVM then fails.
                log("sandbox: KVM cannot run this guest; using TCG")
                accel = "tcg"
    raise AssertionError("unreachable")


def _boot(
    argv: Sequence[str],
    kernel: Kernel,
    busybox: Path,
    accel: str,
    *,
    udev: bool,
    timeout: float,
    memory: str,
    cpus: int,
    preload: Sequence[str],
    env: dict[str, str],
    cwd: str | None,
    sink: BinaryIO | None,
    vng_args: Sequence[str],
) -> GuestResult:
    """One guest boot running *argv*; GuestResult.started says whether it ran."""
    notes: list[str] = []
    run_base = cache_dir() / "run"
    run_base.mkdir(parents=True, exist_ok=True)
    rwdir = Path(tempfile.mkdtemp(prefix="guest-", dir=run_base))
    if any(c in str(rwdir) for c in "=,"):
        # vng splits --rwdir on '=' (guest=host) and qemu options on ','.
        shutil.rmtree(rwdir)
        raise SandboxError(f"cache path {rwdir} must not contain '=' or ','; set PYDM_CACHE elsewhere")
    proc: subprocess.Popen[bytes] | None = None
    tail = _Tail(rwdir / "output", sink)
    try:
        wrapper = rwdir / "wrapper.sh"
        wrapper.write_text(
            _wrapper_script(
                rwdir, argv, cwd=cwd or os.getcwd(), env=_env_exports(env), udev=udev, preload=preload
            )
        )
        vng_argv = [
            find_vng(), "--run", str(kernel.vmlinuz),
            "--busybox", str(busybox),
            "--force-9p",  # no virtiofsd dependency; 9p modules go into vng's initramfs
            "--memory", memory, "--cpus", str(cpus),
            "--name", "pydm-sandbox",
            f"--rwdir={rwdir}",
            *(["--disable-kvm"] if accel == "tcg" else []),
            *vng_args,
            f"--qemu-opts={CACHED_EXPORT}",
            "--exec", shlex.join(["sh", str(wrapper)]),
        ]  # fmt: skip
        console_path = rwdir / "console.log"
        start = time.monotonic()
        with open(console_path, "wb") as console:
            proc = subprocess.Popen(
                vng_argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True, env=_vng_env(vng_argv[0]),
            )
            tail.start()
            timed_out = False
            try:
                vng_rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                vng_rc = None
            finally:
                _kill_group(proc)
        elapsed = time.monotonic() - start
        tail.stop.set()
        tail.join()

        guest_log = _read(rwdir / "guest.log")
        console_text = _read(console_path)
        status_text = _read(rwdir / "status").strip()
        if timed_out:
            rc = EXIT_TIMEOUT
            notes.append(f"timed out after {timeout:.0f}s; guest killed")
        elif status_text.lstrip("-").isdigit():
            rc = int(status_text)
            if vng_rc != rc:
                notes.append(f"vng exit status {vng_rc} != command status {rc} (trusting the status file)")
        else:
            rc = EXIT_NO_STATUS
            notes.append(f"guest ended without writing a status (vng exit {vng_rc}); console tail:\n"
                         + "\n".join(console_text.splitlines()[-30:]))
        if rc in (97, 98) and "PYDM:" in guest_log:
            notes.append(guest_log.strip())
        return GuestResult(
            returncode=rc,
            output=bytes(tail.data),
            guest_log=guest_log,
            console=console_text,
            elapsed=elapsed,
            boot_seconds=_start_uptime(guest_log),
            accel=accel,
            kernel=kernel.version,
            notes=notes,
            started="\nstart uptime " in "\n" + guest_log,
        )
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
        tail.stop.set()
        if tail.is_alive():
            tail.join()
        shutil.rmtree(rwdir, ignore_errors=True)


def run_native(
    argv: Sequence[str], *, build: bool = True, extra_env: dict[str, str] | None = None, log: Log = print
) -> int:
    """Run *argv* on this host (which has device-mapper); returns its exit status."""
    env = dict(os.environ, **(extra_env or {}))
    env.pop("PYDM_IN_GUEST", None)
    with contextlib.ExitStack() as stack:
        if build:
            release = os.uname().release
            kdir = Path("/lib/modules") / release / "build"
            if kdir.is_dir():
                ko = stack.enter_context(built_module(kdir, release, log=log))
                if ko is not None:
                    env["PYDM_BASIC_TARGET_KO"] = str(ko)
            else:
                log(f"sandbox: no headers at {kdir}; not building basic_target.ko "
                    f"(apt-get install linux-headers-{release})")
        return subprocess.run(list(argv), env=env, check=False).returncode


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _start_uptime(guest_log: str) -> float | None:
    for line in guest_log.splitlines():
        if line.startswith("start uptime "):
            try:
                return float(line.split()[2])
            except (IndexError, ValueError):
                return None
    return None
