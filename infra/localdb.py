#!/usr/bin/env python3
"""Start/stop/inspect a local SecantusDB server (MongoDB wire protocol).

Stdlib only; runs with any python3 >= 3.8 (the process plumbing it shares
with localaws.py lives in localservice.py beside it).  The server binary is
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
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localservice  # noqa: E402  (stdlib-only sibling)
from localservice import HOST, ROOT  # noqa: E402

DEFAULT_BIN = ROOT / ".venv" / "bin" / "secantusd-py"
OP_MSG = 2013


def uri_for(port: int) -> str:
    return f"mongodb://{HOST}:{port}/?directConnection=true"


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
# Service description
# --------------------------------------------------------------------------

def pid_is_secantus(pid: int) -> bool:
    return localservice.cmdline_contains(pid, b"secantus")


def add_start_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--storage", required=True, help="storage directory or ':memory:'")
    s.add_argument("server_args", nargs="*", help="extra secantusd-py flags (after --)")


def prepare(a: argparse.Namespace) -> None:
    """Make --storage absolute (the server runs from the repo root) and create it."""
    if a.storage != ":memory:":
        a.storage = str(Path(a.storage).resolve())
        Path(a.storage).mkdir(parents=True, exist_ok=True)


def server_argv(binary: Path, port: int, a: argparse.Namespace) -> list[str]:
    return [str(binary), "--host", HOST, "--port", str(port), "--storage-path", a.storage] + a.server_args


SERVICE = localservice.Service(
    name="localdb",
    default_bin=DEFAULT_BIN,
    bin_env="SECANTUSD_BIN",
    argv=server_argv,
    is_ready=ping,
    owns_pid=pid_is_secantus,
    address_for=uri_for,
    address_key="uri",
    noun="server",
    pid_qualifier="",
    probe="ping",
    start_timeout=30.0,
    start_timeout_help="seconds to wait for ping (default 30)",
    start_help="start a server in the background",
    status_help="print running/stopped and the URI",
    add_start_options=add_start_options,
    prepare=prepare,
)


def main(argv: list[str] | None = None) -> int:
    return localservice.main(SERVICE, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
