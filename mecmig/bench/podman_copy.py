"""One file over one TCP connection: how `mecmig bench migration` moves Podman's checkpoint
archive between two MEC hosts (stdlib only: it runs as `python3 -I -S podman_copy.py`, inside a
Mininet host's network namespace, so its traffic crosses the emulated links as mecmig's copies do).

    podman_copy.py recv PORT OUT      listen on PORT, print "ready", write what one sender sends
                                      to OUT, answer "ok <bytes>", print {"bytes", "seconds"}
    podman_copy.py send HOST PORT IN  send IN (sendfile), wait for the receiver's "ok <bytes>",
                                      print {"bytes", "seconds"}; exit 1 if it did not confirm

Plain bytes, no digest and no compression of its own: what `scp` of the archive would move,
without ssh's cipher (the emulated link, not a CPU, is the limit being measured).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

CHUNK = 1 << 20
TIMEOUT_S = 300.0
CONNECT_TRIES_S = 5.0


def receive(port: int, out: str) -> int:
    with socket.create_server(("0.0.0.0", port), reuse_port=False) as server:
        server.settimeout(TIMEOUT_S)
        print("ready", flush=True)
        conn, _ = server.accept()
    with conn, open(out, "wb") as f:
        conn.settimeout(TIMEOUT_S)
        start, total = time.monotonic(), 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := conn.recv_into(buf):
            f.write(view[:n])
            total += n
        f.flush()
        conn.sendall(f"ok {total}\n".encode())
    print(json.dumps({"bytes": total, "seconds": round(time.monotonic() - start, 6)}), flush=True)
    return 0


def _connect(host: str, port: int) -> socket.socket:
    deadline = time.monotonic() + CONNECT_TRIES_S
    while True:
        try:
            return socket.create_connection((host, port), timeout=TIMEOUT_S)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def send(host: str, port: int, path: str) -> int:
    start = time.monotonic()
    size = os.path.getsize(path)
    with _connect(host, port) as conn, open(path, "rb") as f:
        conn.sendfile(f)  # os.sendfile, waiting on the socket as its timeout needs
        conn.shutdown(socket.SHUT_WR)
        answer = conn.makefile("rb").readline().decode().strip()
    if answer != f"ok {size}":
        print(f"receiver answered {answer!r} for {size} bytes", file=sys.stderr)
        return 1
    print(json.dumps({"bytes": size, "seconds": round(time.monotonic() - start, 6)}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "recv":
        return receive(int(argv[1]), argv[2])
    if len(argv) == 4 and argv[0] == "send":
        return send(argv[1], int(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
