"""Process plumbing shared by the local test-server scripts beside it.

Stdlib only; runs with any python3 >= 3.8.  localdb.py (SecantusDB) and
localaws.py (moto) each describe their server with a `Service` and hand it to
`main()`, which provides the common command line:

    SCRIPT start  --port PORT|auto [server options] --pidfile FILE [--logfile FILE]
                  [--timeout SECONDS] [--bin PATH]
    SCRIPT stop   --pidfile FILE [--timeout SECONDS]
    SCRIPT status --pidfile FILE

`start` launches the server in a new session with its output appended to the
log file (default: the pidfile with a .log suffix), records "PID PORT" in the
pidfile at once, and prints `Service.address_for(port)` on stdout once
`Service.is_ready(port)` holds; if a server is already running per the
pidfile it prints that one's address.  With --port auto a server that exits
early is retried on a fresh port, three attempts in all.  It exits 1, with the
tail of the log on stderr, when the server does not come up.
`stop` sends SIGTERM (SIGKILL after the grace period) and removes the pidfile;
it exits 0 also when nothing was running, 1 if the process survives SIGKILL.
`status` prints one line and exits 0 when running, 3 when stopped.
Stdout carries only those lines; messages go to stderr as "NAME: ...".
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


# --------------------------------------------------------------------------
# Process / pidfile helpers
# --------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead but not reaped, e.g. under a non-reaping PID 1) is dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rindex(")") + 2] in "ZX":
            return False
    except (OSError, ValueError, IndexError):
        pass
    return True


def cmdline_contains(pid: int, needle: bytes) -> bool:
    """Best-effort guard against PID reuse (Linux /proc only)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: can't tell, trust pid
    except OSError:
        return True
    return needle in cmdline


def read_pidfile(path: Path) -> tuple[int, int] | None:
    try:
        parts = path.read_text().split()
        return int(parts[0]), int(parts[1])
    except (OSError, ValueError, IndexError):
        return None


def running(path: Path, owns_pid: Callable[[int], bool]) -> tuple[int, int] | None:
    """(pid, port) if the pidfile names a live process that owns_pid accepts."""
    rec = read_pidfile(path)
    if rec and pid_alive(rec[0]) and owns_pid(rec[0]):
        return rec
    return None


def write_pidfile(path: Path, pid: int, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid} {port}\n")
    os.replace(tmp, path)


def remove_pidfile(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as e:
            return e.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(log empty)"


def signal_proc(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:      # we started it as a session leader
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def terminate(pid: int, grace: float, log: Callable[[str], None]) -> None:
    signal_proc(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    log(f"pid {pid} ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
    signal_proc(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)


# --------------------------------------------------------------------------
# Service description
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    """What differs between the servers; the wording fields keep each script's messages."""

    name: str                   # message prefix and log banner, e.g. "localdb"
    default_bin: Path
    bin_env: str                # environment variable that overrides default_bin
    argv: Callable[[Path, int, argparse.Namespace], list[str]]  # (binary, port, start options)
    is_ready: Callable[[int], bool]     # (port) -> the server answers
    owns_pid: Callable[[int], bool]     # (pid) -> that process is this kind of server
    address_for: Callable[[int], str]   # (port) -> what `start` prints
    address_key: str            # status line: "... pid=PID KEY=ADDRESS"
    noun: str                   # "NOUN did not answer ...", "NOUN exited with code ..."
    pid_qualifier: str          # "started QUALIFIERpid ...", "stopped QUALIFIERpid ..."
    probe: str                  # "did not answer PROBE", "running (not answering PROBE)"
    start_timeout: float        # default of start --timeout
    start_timeout_help: str
    start_help: str
    status_help: str
    # Adds the server's own start options (right after --port).
    add_start_options: Callable[[argparse.ArgumentParser], None] | None = None
    # Runs once before launching (after the binary check); may adjust the options.
    prepare: Callable[[argparse.Namespace], None] | None = None

    def log(self, msg: str) -> None:
        print(f"{self.name}: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------

def cmd_start(svc: Service, a: argparse.Namespace) -> int:
    log = svc.log
    pidfile = Path(a.pidfile).resolve()
    logfile = Path(a.logfile).resolve() if a.logfile else pidfile.with_suffix(".log")
    binary = Path(a.bin)

    rec = running(pidfile, svc.owns_pid)
    if rec:
        pid, port = rec
        log(f"already running (pid {pid}, port {port}) per {pidfile}")
        print(svc.address_for(port))
        return 0
    if not binary.exists():
        log(f"server binary {binary} not found; run infra/venv.sh first")
        return 1
    if svc.prepare:
        svc.prepare(a)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)

    auto = a.port == "auto"
    attempts = 3 if auto else 1
    for attempt in range(1, attempts + 1):
        port = free_port() if auto else int(a.port)
        if not auto and port_in_use(port):
            log(f"port {port} on {HOST} is already in use by another process")
            return 1
        argv = svc.argv(binary, port, a)
        with open(logfile, "ab") as lf:
            lf.write(f"--- {svc.name} start {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(argv)}\n".encode())
            lf.flush()
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                cwd=str(ROOT), start_new_session=True, close_fds=True,
            )
        # Record immediately so `stop` can clean up even if we get killed while waiting.
        write_pidfile(pidfile, proc.pid, port)

        deadline = time.monotonic() + a.timeout
        t0 = time.monotonic()
        while True:
            rc = proc.poll()
            if rc is not None:
                break
            if svc.is_ready(port):
                log(f"started {svc.pid_qualifier}pid {proc.pid} on port {port} in {time.monotonic() - t0:.2f}s")
                print(svc.address_for(port), flush=True)
                return 0
            if time.monotonic() > deadline:
                rc = None
                break
            time.sleep(0.1)

        if rc is None:
            log(f"{svc.noun} did not answer {svc.probe} within {a.timeout:.0f}s; killing pid {proc.pid}")
            terminate(proc.pid, 5, log)
            proc.poll()
        else:
            log(f"{svc.noun} exited with code {rc} (attempt {attempt}/{attempts}, port {port})")
        remove_pidfile(pidfile)
        if rc is None or attempt == attempts:
            break
    log(f"failed to start; last lines of {logfile}:")
    print(log_tail(logfile), file=sys.stderr)
    return 1


def cmd_stop(svc: Service, a: argparse.Namespace) -> int:
    log = svc.log
    pidfile = Path(a.pidfile)
    rec = read_pidfile(pidfile)
    if rec is None:
        if pidfile.exists():
            log(f"unreadable pidfile {pidfile}; removing")
            pidfile.unlink()
        else:
            log("not running")
        return 0
    pid, port = rec
    if pid_alive(pid) and svc.owns_pid(pid):
        terminate(pid, a.timeout, log)
        if pid_alive(pid):
            log(f"pid {pid} still alive after SIGKILL")
            return 1
        log(f"stopped {svc.pid_qualifier}pid {pid} (port {port})")
    else:
        log(f"not running (stale pidfile for pid {pid})")
    remove_pidfile(pidfile)
    return 0


def cmd_status(svc: Service, a: argparse.Namespace) -> int:
    pidfile = Path(a.pidfile)
    rec = running(pidfile, svc.owns_pid)
    if rec is None:
        stale = read_pidfile(pidfile)
        print("stopped" + (f" (stale pidfile, pid {stale[0]})" if stale else ""))
        return 3
    pid, port = rec
    state = "running" if svc.is_ready(port) else f"running (not answering {svc.probe})"
    print(f"{state} pid={pid} {svc.address_key}={svc.address_for(port)}")
    return 0


def main(svc: Service, description: str | None, argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("start", help=svc.start_help)
    s.add_argument("--port", required=True, help="TCP port or 'auto'")
    if svc.add_start_options:
        svc.add_start_options(s)
    s.add_argument("--pidfile", required=True)
    s.add_argument("--logfile", help="default: pidfile with .log suffix")
    s.add_argument("--timeout", type=float, default=svc.start_timeout, help=svc.start_timeout_help)
    s.add_argument("--bin", default=os.environ.get(svc.bin_env, str(svc.default_bin)))
    s.set_defaults(func=cmd_start)

    t = sub.add_parser("stop", help="stop the server named by the pidfile")
    t.add_argument("--pidfile", required=True)
    t.add_argument("--timeout", type=float, default=10.0, help="SIGTERM grace before SIGKILL (default 10)")
    t.set_defaults(func=cmd_stop)

    st = sub.add_parser("status", help=svc.status_help)
    st.add_argument("--pidfile", required=True)
    st.set_defaults(func=cmd_status)

    a = p.parse_args(argv)
    if a.cmd == "start" and a.port != "auto":
        try:
            if not 0 < int(a.port) < 65536:
                raise ValueError
        except ValueError:
            p.error(f"--port must be 1-65535 or 'auto', got {a.port!r}")
    return a.func(svc, a)
