#!/usr/bin/env python3
"""Start/stop/inspect a local moto server (EventBridge, SQS, ... over HTTP).

Stdlib only (it reuses the process helpers of localdb.py beside it).  The
server is <repo>/.venv/bin/moto_server (from `moto[server]` in
infra/requirements.txt; create it with infra/venv.sh), overridable with --bin
or $MOTO_SERVER_BIN.

    localaws.py start  --port PORT|auto --pidfile FILE [--logfile FILE]
    localaws.py stop   --pidfile FILE
    localaws.py status --pidfile FILE

`start` prints the endpoint URL (http://127.0.0.1:PORT) on stdout once the
server answers HTTP, and records "PID PORT" in the pidfile.
`status` exits 0 when running, 3 when stopped.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from localdb import (  # noqa: E402  (stdlib-only sibling)
    HOST,
    ROOT,
    free_port,
    log_tail,
    pid_alive,
    port_in_use,
    read_pidfile,
    terminate,
    write_pidfile,
)

DEFAULT_BIN = ROOT / ".venv" / "bin" / "moto_server"


def endpoint_for(port: int) -> str:
    return f"http://{HOST}:{port}"


def log(msg: str) -> None:
    print(f"localaws: {msg}", file=sys.stderr)


def answers_http(port: int, timeout: float = 2.0) -> bool:
    """True once anything answers an HTTP request on the port (moto's dashboard API)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/moto-api/data.json", headers={"Connection": "close"})
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def pid_is_moto(pid: int) -> bool:
    """Best-effort guard against PID reuse (Linux /proc only)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: can't tell, trust pid
    except OSError:
        return True
    return b"moto" in cmdline


def running(path: Path) -> tuple[int, int] | None:
    rec = read_pidfile(path)
    if rec and pid_alive(rec[0]) and pid_is_moto(rec[0]):
        return rec
    return None


def cmd_start(a: argparse.Namespace) -> int:
    pidfile = Path(a.pidfile).resolve()
    logfile = Path(a.logfile).resolve() if a.logfile else pidfile.with_suffix(".log")
    binary = Path(a.bin)

    rec = running(pidfile)
    if rec:
        pid, port = rec
        log(f"already running (pid {pid}, port {port}) per {pidfile}")
        print(endpoint_for(port))
        return 0
    if not binary.exists():
        log(f"server binary {binary} not found; run infra/venv.sh first")
        return 1
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)

    auto = a.port == "auto"
    attempts = 3 if auto else 1
    for attempt in range(1, attempts + 1):
        port = free_port() if auto else int(a.port)
        if not auto and port_in_use(port):
            log(f"port {port} on {HOST} is already in use by another process")
            return 1
        argv = [str(binary), "-H", HOST, "-p", str(port)]
        with open(logfile, "ab") as lf:
            lf.write(f"--- localaws start {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(argv)}\n".encode())
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
            if answers_http(port):
                log(f"started moto pid {proc.pid} on port {port} in {time.monotonic() - t0:.2f}s")
                print(endpoint_for(port), flush=True)
                return 0
            if time.monotonic() > deadline:
                rc = None
                break
            time.sleep(0.1)

        if rc is None:
            log(f"moto did not answer HTTP within {a.timeout:.0f}s; killing pid {proc.pid}")
            terminate(proc.pid, 5)
            proc.poll()
        else:
            log(f"moto exited with code {rc} (attempt {attempt}/{attempts}, port {port})")
        try:
            pidfile.unlink()
        except FileNotFoundError:
            pass
        if rc is None or attempt == attempts:
            break
    log(f"failed to start; last lines of {logfile}:")
    print(log_tail(logfile), file=sys.stderr)
    return 1


def cmd_stop(a: argparse.Namespace) -> int:
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
    if pid_alive(pid) and pid_is_moto(pid):
        terminate(pid, a.timeout)
        if pid_alive(pid):
            log(f"pid {pid} still alive after SIGKILL")
            return 1
        log(f"stopped moto pid {pid} (port {port})")
    else:
        log(f"not running (stale pidfile for pid {pid})")
    try:
        pidfile.unlink()
    except FileNotFoundError:
        pass
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    pidfile = Path(a.pidfile)
    rec = running(pidfile)
    if rec is None:
        stale = read_pidfile(pidfile)
        print("stopped" + (f" (stale pidfile, pid {stale[0]})" if stale else ""))
        return 3
    pid, port = rec
    state = "running" if answers_http(port) else "running (not answering HTTP)"
    print(f"{state} pid={pid} endpoint={endpoint_for(port)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("start", help="start a moto server in the background")
    s.add_argument("--port", required=True, help="TCP port or 'auto'")
    s.add_argument("--pidfile", required=True)
    s.add_argument("--logfile", help="default: pidfile with .log suffix")
    s.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for an HTTP answer (default 60)")
    s.add_argument("--bin", default=os.environ.get("MOTO_SERVER_BIN", str(DEFAULT_BIN)))
    s.set_defaults(func=cmd_start)

    t = sub.add_parser("stop", help="stop the server named by the pidfile")
    t.add_argument("--pidfile", required=True)
    t.add_argument("--timeout", type=float, default=10.0, help="SIGTERM grace before SIGKILL (default 10)")
    t.set_defaults(func=cmd_stop)

    st = sub.add_parser("status", help="print running/stopped and the endpoint")
    st.add_argument("--pidfile", required=True)
    st.set_defaults(func=cmd_status)

    a = p.parse_args(argv)
    if a.cmd == "start" and a.port != "auto":
        try:
            if not 0 < int(a.port) < 65536:
                raise ValueError
        except ValueError:
            p.error(f"--port must be 1-65535 or 'auto', got {a.port!r}")
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
