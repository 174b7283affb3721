#!/usr/bin/env python3
"""Start/stop/inspect a local SecantusDB server (MongoDB wire protocol).

Stdlib only; runs with any python3 >= 3.8.  The server binary is
<repo>/.venv/bin/secantusd-py (create it with infra/venv.sh), overridable
with --bin or $SECANTUSD_BIN.

    localdb.py start  --port PORT|auto --storage PATH|:memory: --pidfile FILE [--logfile FILE]
    localdb.py stop   --pidfile FILE
    localdb.py status --pidfile FILE

`start` prints the connection URI on stdout once the server answers a real
MongoDB `ping` (OP_MSG) and records "PID PORT" in the pidfile.
`status` exits 0 when running, 3 when stopped.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = ROOT / ".venv" / "bin" / "secantusd-py"
HOST = "127.0.0.1"
OP_MSG = 2013


def uri_for(port: int) -> str:
    return f"mongodb://{HOST}:{port}/?directConnection=true"


def log(msg: str) -> None:
    print(f"localdb: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------
# Minimal BSON + OP_MSG
# --------------------------------------------------------------------------

def _cstring(s: str) -> bytes:
    b = s.encode()
    if b"\x00" in b:
        raise ValueError("NUL in key")
    return b + b"\x00"


def bson_encode(doc: dict) -> bytes:
    """Encode a flat dict of str/int/float/bool values."""
    out = bytearray()
    for k, v in doc.items():
        if isinstance(v, bool):
            out += b"\x08" + _cstring(k) + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            if -(2**31) <= v < 2**31:
                out += b"\x10" + _cstring(k) + struct.pack("<i", v)
            else:
                out += b"\x12" + _cstring(k) + struct.pack("<q", v)
        elif isinstance(v, float):
            out += b"\x01" + _cstring(k) + struct.pack("<d", v)
        elif isinstance(v, str):
            b = v.encode()
            out += b"\x02" + _cstring(k) + struct.pack("<i", len(b) + 1) + b + b"\x00"
        elif isinstance(v, dict):
            out += b"\x03" + _cstring(k) + bson_encode(v)
        else:
            raise TypeError(f"unsupported BSON value type {type(v).__name__}")
    return struct.pack("<i", len(out) + 5) + bytes(out) + b"\x00"


def bson_decode(data: bytes, pos: int = 0) -> dict:
    """Decode a BSON document; enough types to walk any server reply."""
    (size,) = struct.unpack_from("<i", data, pos)
    end = pos + size - 1
    pos += 4
    doc: dict = {}
    while pos < end:
        t = data[pos]
        pos += 1
        k_end = data.index(b"\x00", pos)
        key = data[pos:k_end].decode(errors="replace")
        pos = k_end + 1
        if t == 0x01:
            (v,) = struct.unpack_from("<d", data, pos); pos += 8
        elif t in (0x02, 0x0D, 0x0E):  # string, js code, symbol
            (n,) = struct.unpack_from("<i", data, pos)
            v = data[pos + 4:pos + 4 + n - 1].decode(errors="replace"); pos += 4 + n
        elif t in (0x03, 0x04):
            (n,) = struct.unpack_from("<i", data, pos)
            sub = bson_decode(data, pos)
            v = sub if t == 0x03 else list(sub.values()); pos += n
        elif t == 0x05:
            (n,) = struct.unpack_from("<i", data, pos)
            v = data[pos + 5:pos + 5 + n]; pos += 5 + n
        elif t in (0x06, 0x0A, 0x7F, 0xFF):  # undefined, null, maxkey, minkey
            v = None
        elif t == 0x07:
            v = data[pos:pos + 12].hex(); pos += 12
        elif t == 0x08:
            v = data[pos] != 0; pos += 1
        elif t in (0x09, 0x11, 0x12):  # datetime, timestamp, int64
            (v,) = struct.unpack_from("<q", data, pos); pos += 8
        elif t == 0x0B:
            a = data.index(b"\x00", pos); b = data.index(b"\x00", a + 1)
            v = (data[pos:a].decode(), data[a + 1:b].decode()); pos = b + 1
        elif t == 0x0C:
            (n,) = struct.unpack_from("<i", data, pos)
            v = None; pos += 4 + n + 12
        elif t == 0x0F:
            (n,) = struct.unpack_from("<i", data, pos)
            v = None; pos += n
        elif t == 0x10:
            (v,) = struct.unpack_from("<i", data, pos); pos += 4
        elif t == 0x13:
            v = data[pos:pos + 16]; pos += 16
        else:
            raise ValueError(f"unknown BSON type 0x{t:02x}")
        doc[key] = v
    return doc


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf += chunk
    return bytes(buf)


def run_command(port: int, cmd: dict, timeout: float = 2.0) -> dict:
    """Send one OP_MSG command and return the reply document."""
    body = struct.pack("<I", 0) + b"\x00" + bson_encode(cmd)
    request_id = int(time.monotonic() * 1000) & 0x7FFFFFFF
    header = struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG)
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(header + body)
        length, _rid, response_to, opcode = struct.unpack("<iiii", _recv_exact(s, 16))
        payload = _recv_exact(s, length - 16)
    if opcode != OP_MSG or response_to != request_id:
        raise ConnectionError(f"unexpected reply opcode={opcode} responseTo={response_to}")
    if payload[4] != 0:
        raise ConnectionError(f"unexpected OP_MSG section kind {payload[4]}")
    return bson_decode(payload, 5)


def ping(port: int, timeout: float = 2.0) -> bool:
    try:
        reply = run_command(port, {"ping": 1, "$db": "admin"}, timeout)
    except (OSError, ValueError, struct.error, IndexError):
        return False
    return reply.get("ok") in (1, 1.0, True)


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


def pid_is_secantus(pid: int) -> bool:
    """Best-effort guard against PID reuse (Linux /proc only)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: can't tell, trust pid
    except OSError:
        return True
    return b"secantus" in cmdline


def read_pidfile(path: Path) -> tuple[int, int] | None:
    try:
        parts = path.read_text().split()
        return int(parts[0]), int(parts[1])
    except (OSError, ValueError, IndexError):
        return None


def running(path: Path) -> tuple[int, int] | None:
    """(pid, port) if the pidfile names a live secantus process."""
    rec = read_pidfile(path)
    if rec and pid_alive(rec[0]) and pid_is_secantus(rec[0]):
        return rec
    return None


def write_pidfile(path: Path, pid: int, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid} {port}\n")
    os.replace(tmp, path)


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


def terminate(pid: int, grace: float) -> None:
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
# Subcommands
# --------------------------------------------------------------------------

def cmd_start(a: argparse.Namespace) -> int:
    pidfile = Path(a.pidfile).resolve()
    logfile = Path(a.logfile).resolve() if a.logfile else pidfile.with_suffix(".log")
    binary = Path(a.bin)

    rec = running(pidfile)
    if rec:
        pid, port = rec
        log(f"already running (pid {pid}, port {port}) per {pidfile}")
        print(uri_for(port))
        return 0
    if not binary.exists():
        log(f"server binary {binary} not found; run infra/venv.sh first")
        return 1

    storage = a.storage
    if storage != ":memory:":
        storage = str(Path(storage).resolve())
        Path(storage).mkdir(parents=True, exist_ok=True)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)

    auto = a.port == "auto"
    attempts = 3 if auto else 1
    for attempt in range(1, attempts + 1):
        port = free_port() if auto else int(a.port)
        if not auto and port_in_use(port):
            log(f"port {port} on {HOST} is already in use by another process")
            return 1
        argv = [str(binary), "--host", HOST, "--port", str(port), "--storage-path", storage]
        argv += a.server_args
        with open(logfile, "ab") as lf:
            lf.write(f"--- localdb start {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(argv)}\n".encode())
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
            if ping(port):
                log(f"started pid {proc.pid} on port {port} in {time.monotonic() - t0:.2f}s")
                print(uri_for(port), flush=True)
                return 0
            if time.monotonic() > deadline:
                rc = None
                break
            time.sleep(0.1)

        if rc is None:
            log(f"server did not answer ping within {a.timeout:.0f}s; killing pid {proc.pid}")
            terminate(proc.pid, 5)
            proc.poll()
        else:
            log(f"server exited with code {rc} (attempt {attempt}/{attempts}, port {port})")
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
    if pid_alive(pid) and pid_is_secantus(pid):
        terminate(pid, a.timeout)
        if pid_alive(pid):
            log(f"pid {pid} still alive after SIGKILL")
            return 1
        log(f"stopped pid {pid} (port {port})")
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
    state = "running" if ping(port) else "running (not answering ping)"
    print(f"{state} pid={pid} uri={uri_for(port)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("start", help="start a server in the background")
    s.add_argument("--port", required=True, help="TCP port or 'auto'")
    s.add_argument("--storage", required=True, help="storage directory or ':memory:'")
    s.add_argument("--pidfile", required=True)
    s.add_argument("--logfile", help="default: pidfile with .log suffix")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for ping (default 30)")
    s.add_argument("--bin", default=os.environ.get("SECANTUSD_BIN", str(DEFAULT_BIN)))
    s.add_argument("server_args", nargs="*", help="extra secantusd-py flags (after --)")
    s.set_defaults(func=cmd_start)

    t = sub.add_parser("stop", help="stop the server named by the pidfile")
    t.add_argument("--pidfile", required=True)
    t.add_argument("--timeout", type=float, default=10.0, help="SIGTERM grace before SIGKILL (default 10)")
    t.set_defaults(func=cmd_stop)

    st = sub.add_parser("status", help="print running/stopped and the URI")
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
