"""volcount: a counter kept on the volume and read from it at every request, stdlib only: a
storage-dependent stateless service (seed 002), whose warm replicas serve whatever their
volume holds.

Run inside a service container as ``python3 /data/volcount.py --port 8080 --file
/volume/count [--log-bytes N]``. It never imports the project.

    GET /hit      one more: reads the file, adds one, writes it (a temporary file renamed
                  over it), appends a record of N bytes to the file's log (``<file>.log``:
                  data the service keeps, which the sync must carry too), answers "<count>\\n"
    GET /count    "<count>\\n" as the file says (0 without a file)
    GET /health   "ok\\n"

Nothing is kept in memory: a replica whose volume was synced a moment ago answers with the
count as of that sync, so after a handover the count a client sees goes back by the hits made
since the last sync (what the sync period costs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class VolumeCount:
    """The count in `path`, read and written at every request."""

    def __init__(self, path: str, log_bytes: int = 0) -> None:
        self.path = path
        self.log_bytes = log_bytes
        self.lock = threading.Lock()

    def read(self) -> int:
        try:
            with open(self.path, encoding="ascii") as f:
                return int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def hit(self) -> int:
        with self.lock:
            n = self.read() + 1
            tmp = f"{self.path}.tmp"
            with open(tmp, "w", encoding="ascii") as f:
                f.write(f"{n}\n")
            os.replace(tmp, self.path)
            if self.log_bytes:
                record = f"{n} ".encode().ljust(self.log_bytes - 1, b".")[: self.log_bytes - 1]
                with open(f"{self.path}.log", "ab") as log:
                    log.write(record + b"\n")
            return n


def handler(count: VolumeCount) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path == "/hit":
                self._answer(200, f"{count.hit()}\n")
            elif self.path in ("/count", "/counter"):
                self._answer(200, f"{count.read()}\n")
            elif self.path == "/health":
                self._answer(200, "ok\n")
            else:
                self._answer(404, "not found\n")

        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="volcount", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8080, help="0: a free port")
    p.add_argument("--ready-file", help='written as "<pid> <port>" once it listens')
    p.add_argument("--file", default="/volume/count", help="where the count is kept")
    p.add_argument("--log-bytes", type=int, default=0, help="a record this long per hit")
    args = p.parse_args(argv)
    if not 0 <= args.log_bytes <= 65536:
        p.error("--log-bytes takes 0 to 65536")
    count = VolumeCount(args.file, args.log_bytes)
    server = ThreadingHTTPServer(("0.0.0.0", args.port), handler(count))
    server.daemon_threads = True
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {server.server_address[1]}\n")
        os.replace(tmp, args.ready_file)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
