#!/usr/bin/env python3
"""Start/stop/inspect a local moto server (EventBridge, SQS, ... over HTTP).

Stdlib only (the process plumbing it shares with localdb.py lives in
localservice.py beside it).  The server is <repo>/.venv/bin/moto_server (from
`moto[server]` in infra/requirements.txt; create it with infra/venv.sh),
overridable with --bin or $MOTO_SERVER_BIN.

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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localservice  # noqa: E402  (stdlib-only sibling)
from localservice import HOST, ROOT  # noqa: E402

DEFAULT_BIN = ROOT / ".venv" / "bin" / "moto_server"


def endpoint_for(port: int) -> str:
    return f"http://{HOST}:{port}"


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
    return localservice.cmdline_contains(pid, b"moto")


def server_argv(binary: Path, port: int, a: argparse.Namespace) -> list[str]:
    return [str(binary), "-H", HOST, "-p", str(port)]


SERVICE = localservice.Service(
    name="localaws",
    default_bin=DEFAULT_BIN,
    bin_env="MOTO_SERVER_BIN",
    argv=server_argv,
    is_ready=answers_http,
    owns_pid=pid_is_moto,
    address_for=endpoint_for,
    address_key="endpoint",
    noun="moto",
    pid_qualifier="moto ",
    probe="HTTP",
    start_timeout=60.0,
    start_timeout_help="seconds to wait for an HTTP answer (default 60)",
    start_help="start a moto server in the background",
    status_help="print running/stopped and the endpoint",
)


def main(argv: list[str] | None = None) -> int:
    return localservice.main(SERVICE, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
