# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup: dmsetup's commands, options, output and exit status, on the Python API.

``main(argv)`` follows dmsetup's main(): parse the switches, pick the
command, check its argument count, set up the ``-c`` report, run the
command once per device argument, print the report, exit 0 or 1.  Heavy
modules (cffi, the control node) load only when a command needs the kernel.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from pydevmapper.cli.commands import Command
    from pydevmapper.cli.report import Options
    from pydevmapper.cli.session import Session

__all__ = ["console", "main", "repeat", "report_options"]


def console() -> None:
    """The console scripts' entry (pydmsetup, pydmstats): ``main()``, then
    out at once, skipping the interpreter's teardown; ``udevcomplete``
    ends the process as soon as it has released the waiter.  udev's rules
    run ``dmsetup udevcomplete`` to release a program waiting on its
    cookie, and udevd starts watching the device for writes only once that
    rule's programs have ended; a program that writes as soon as it is
    released (LVM wiping a new volume) must not get there first, or the
    change event its write should raise never comes
    (tests/root/test_dropin_dmsetup.py)."""
    from pydevmapper.cli.session import Session

    Session.ends_when_released = True
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from pydevmapper.cli import options
    from pydevmapper.cli.session import Failed, Session

    if argv is None:
        argv = sys.argv[1:]
    if prog is None:
        # getopt names the program as it was invoked; `python -m` has no name.
        base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        prog = "dmsetup" if base in ("", "__main__.py", "-c") else base
    try:
        parsed = options.parse(prog, list(argv))
    except options.UsageError as exc:
        _err(f"{exc}\nCouldn't process command line.\n")
        return 1
    s = Session(prog, parsed)
    undo_log = _log_to_stderr(s.has("verbose")) if s.has("verbose") >= 2 else None
    try:
        return _run(s, parsed.args)
    except Failed:
        return 1
    except KeyboardInterrupt:
        pass  # below, once the output is out
    finally:
        s.flush()
        s.close()
        if undo_log is not None:
            undo_log()
    # Ctrl-C (a repeating report runs until it): end as dmsetup does,
    # killed by SIGINT, so the shell sees it; no traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    return 130  # 128 + SIGINT, should the signal not end us


def _log_to_stderr(verbose: int) -> Callable[[], None]:
    """-vv: udev cookie waits; -vvv and more: every ioctl too (see pydevmapper.log).
    -v alone only adds to the output, as in dmsetup.  Returns what undoes it,
    for main() to call when the command ends (main may run again in-process)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root, ioctl = logging.getLogger("pydevmapper"), logging.getLogger("pydevmapper.ioctl")
    levels = root.level, ioctl.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ioctl.setLevel(logging.NOTSET if verbose >= 3 else logging.WARNING)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ioctl.setLevel(levels[1])

    return undo


def _err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _check_switches(s: Session) -> str | None:
    if bool(s.has("major")) != bool(s.has("minor")):
        return "Please specify both major number and minor number."
    if s.has("table") and s.has("notable"):
        return "--table and --notable are incompatible."
    if s.has("addnodeonresume") and s.has("addnodeoncreate"):
        return "--addnodeonresume and --addnodeoncreate are incompatible."
    return None


def _run(s: Session, args: list[str]) -> int:
    from pydevmapper.cli import commands, texts
    from pydevmapper.cli.session import Failed, Plan

    problem = _check_switches(s)
    if problem:
        _err(f"{problem}\nCouldn't process command line.\n")
        return 1
    # `dmsetup stats ...`, or the program started as dmstats: its own flow.
    stats_base = "dmsetup stats" if args[:1] == ["stats"] else (
        "dmstats" if s.prog in ("dmstats", "pydmstats") else None)
    if stats_base is not None:
        from pydevmapper.cli import stats_commands

        return stats_commands.run(s, stats_base, args[1:] if args[:1] == ["stats"] else args)
    forced_ok = bool(s.has("help") or s.has("version"))
    if s.has("help"):
        name, args = "help", []
    elif s.has("version"):
        name, args = "version", []
    elif not args:
        _err(texts.USAGE)
        return 1
    else:
        name, args = args[0], args[1:]
    cmd = commands.COMMANDS.get(name)
    if cmd is None:
        _err("Unknown command.\n" + texts.USAGE)
        return 1
    if not forced_ok and (len(args) < cmd.min_args or (cmd.max_args >= 0 and len(args) > cmd.max_args)):
        _err("Incorrect number of arguments.\n" + texts.USAGE)
        return 1
    # splitname's output is a report, and so is -S on a command that takes it.
    selected = cmd if s.has("select") and cmd.repeatable == 2 else None
    columns = bool(s.has("columns") or name == "splitname")
    name_type, tree_options = "devno", None
    if not forced_ok and (s.has("tree") or (s.has("options") and not columns)):
        from pydevmapper.cli.query_commands import read_output_options

        problem, name_type, tree_options = read_output_options(s, columns)
        if problem:
            _err(f"{problem}\nCouldn't process command line.\n")
            return 1
    if s.has("noudevsync"):
        s.udev_bypass_warning()  # dmsetup turns sync off, so asks, before the command
    columns = columns or selected is not None
    opts = None
    needs = {"needs_deps": False, "needs_tree": False, "needs_stats": False}
    # --json replaces a report's rows, not -S's selection.
    if columns and name not in ("help", "version") and (not s.has("json") or s.has("select")):
        from pydevmapper.cli import report

        try:
            opts = report_options(s, name)
        except report.HelpShown:
            return 0
        except report.ReportError as exc:
            if str(exc):
                _err(f"{exc}\n")
            return 1
        used: set[str] = set(opts.selection.fields) if opts.selection is not None else set()
        if name == "splitname" and opts.selection is not None:
            # libdm puts selection-only fields first; a splitname row fills none outside its own
            shown = {f.id for f in opts.fields}
            missing = [f for f in opts.selection.fields if f not in shown and f != "selected"
                       and not any(x.id == f and x.section == "splitname_" for x in report.FIELDS)]
            if missing:
                s.error(f"_do_report_object: no data assigned to field {missing[-1]}")
                s.error("Command failed.")
                return 1
        needs = {"needs_deps": any(f.section == "deps_" and (f in opts.fields or f.id in used)
                                   for f in report.FIELDS),
                 "needs_tree": report_uses(opts, "tree_"),
                 "needs_stats": report_uses(opts, "stats_") or report_uses(opts, "region_")}
    run_cmd = commands.COMMANDS["info"] if selected is not None else cmd
    s.begin(Plan(name, run_cmd, selected, columns, opts, name_type, tree_options, **needs))
    if s.plan.needs_tree:  # dmsetup builds the whole tree before the first row
        from pydevmapper.cli.query_commands import device_graph

        try:
            device_graph(s)
        except Failed:
            return 1

    multiple = bool(run_cmd.repeatable and len(args) != 1
                    and (args or (not s.has("uuid") and not s.has("major"))))
    widths: list[int] = []  # libdm's column widths only ever grow over a report's runs
    return repeat(s, lambda: _run_once(s, args, multiple, widths), report=opts is not None,
                  forced_ok=forced_ok)


def repeat(s: Session, run: Callable[[], bool], *, report: bool, forced_ok: bool = False) -> int:
    """--count/--interval: the whole command again, as dmsetup repeats it:
    a report waits for the next tick of a fixed-rate interval timer
    (default 1 s) between runs and heads every run's rows; other output
    comes again at once.  --interval without --count, or --count 0: until
    interrupted.  ``run`` does one run and says whether it succeeded;
    returns the exit status."""
    from pydevmapper.cparse import atoi

    count = s.has("count") and atoi(s.value("count") or "")
    runs = count if count else (None if s.has("count") or s.has("interval") else 1)
    ticks = None  # only a report waits between runs
    if runs != 1 and report:
        ticks = _Ticks(atoi(s.value("interval") or "") if s.has("interval") else 1)
    done = 0
    while True:
        ok = run()
        done += 1
        if not ok or done == runs:
            return 0 if ok or forced_ok else 1
        if ticks is not None:
            s.write("\n")
            s.flush()
            missed = ticks.wait()
            if missed:
                s.error(f"WARNING: Try increasing --interval ({missed} missed timer events).")
        s.flush()


def _run_once(s: Session, args: list[str], multiple: bool, widths: list[int]) -> bool:
    """One run of the plan's command and its output; False if it failed."""
    from pydevmapper.cli.session import Failed

    plan, opts = s.plan, s.plan.report
    s.new_run()
    ok = True
    try:
        if plan.selected is not None:
            _run_selected(s, plan.selected)
        else:
            _repeat(s, plan.run, args, multiple)
    except Failed:
        s.error("Command failed.")
        ok = False
    if s.concise_started:
        s.write("\n")
    if opts is not None and plan.selected is None and not s.has("json"):
        from pydevmapper.cli import report

        s.write(report.format_report(opts, s.report_rows, widths))
    if (s.has("json") and s.json_rows) or (s.has("json") and s.current in ("info", "deps", "status", "table")):
        from pydevmapper.cli import jsonout as j
        s.write(j.devices(s.json_rows))
    return ok


class _Ticks:
    """dmsetup's interval timer: a periodic CLOCK_MONOTONIC timer armed
    before the first run, so a run's own time does not push the next one
    back; ticks that passed while a run was still going are reported as
    missed, and the next run starts at once."""

    def __init__(self, seconds: int) -> None:
        import time

        self._clock, self._sleep = time.monotonic, time.sleep
        self.seconds = seconds
        self.next = self._clock() + seconds

    def wait(self) -> int:
        """Sleep until the next tick; returns how many ticks were missed."""
        now = self._clock()
        if now < self.next:
            self._sleep(self.next - now)
            expired = 1
        else:
            expired = 1 + int((now - self.next) // self.seconds)
        self.next += expired * self.seconds
        return expired - 1


def report_uses(opts: Options, section: str) -> bool:
    """Whether a field of this section is shown, sorted on or selected on."""
    from pydevmapper.cli import report

    selected = getattr(opts.selection, "fields", ())
    return any(f.section == section for f in opts.fields) or any(
        f.section == section for f, _ in opts.sort) or any(
        f.section == section and f.id in selected for f in report.FIELDS)


def _repeat(s: Session, cmd: Command, args: list[str], multiple: bool) -> None:
    """One call per device argument, stopping at the first failure."""
    if not cmd.repeatable or len(args) <= 1:
        cmd.fn(s, args, multiple)
        return
    for i in range(len(args)):
        cmd.fn(s, args[i:], multiple)


def _run_selected(s: Session, cmd: Command) -> None:
    """-S on a command other than info: run it on each device the selection keeps."""
    from pydevmapper.cli.query_commands import for_all, selected

    for_all(s, cmd.fn, [], keep=lambda dev: selected(s, s.info(s.device(dev.name))))


def report_options(s: Session, name: str, default: str | None = None) -> Options:
    """The -c report's fields and layout from -o, -O, -S and the layout
    switches (dmsetup's _report_init); ``default``: the fields without -o
    (the command's own defaults otherwise)."""
    from pydevmapper.cli import report

    prefix = "splitname_" if name == "splitname" else ""
    spec = report.DEFAULT_SPLITNAME if name == "splitname" else report.DEFAULT_INFO
    if default is not None:
        spec = default
    given = s.value("options") if s.has("options") else None
    headings, aligned, separator = True, True, " "
    if s.has("noheadings"):
        headings, aligned, separator = False, False, ":"
    if given is not None:
        if "help" in given:
            headings = False
        spec = given if not given.startswith("+") else f"{spec},{given[1:]}"

    def err(text: str) -> None:
        _err(text)

    fields = report.parse_fields(spec, prefix, err)
    sort: list[tuple[report.Field, bool]] = []
    if s.has("sort"):
        if name in ("status", "table"):
            raise report.ReportError("--sort is not yet supported with status and table.")
        sort = report.parse_sort(s.value("sort") or "", prefix)
    if s.has("separator"):
        separator, aligned = s.value("separator") or "", False
    prefixes = bool(s.has("nameprefixes"))
    if prefixes:
        aligned = False
    selection = None
    if s.has("select"):
        from pydevmapper.cli import selection as select

        selection = select.parse(s.value("select") or "", prefix, err)
    return report.Options(fields, sort, selection, headings, aligned, separator,
                          prefixes, not s.has("unquoted"), bool(s.has("rows")))
