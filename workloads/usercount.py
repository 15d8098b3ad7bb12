"""usercount: a per-user counter on a volume, seed 003's user-state app (USPA), stdlib only.

Run inside a service container as ``USERCOUNT_FILE=/volume/counts.json python3
/data/usercount.py --port 8080``. It never imports the project.

    GET /hit/<user>    count one more request of <user>; "<count>\\n"
    GET /count/<user>  "<count>\\n" (0 for a user never seen)
    GET /health        "ok\\n"

Its state is ``{user: count}``. It finds the file that keeps it through its **environment**
(``USERCOUNT_FILE``, the instance's configuration, like the paper's app finds its Docker
volume): every hit rewrites the file (atomically) before it is answered, and at start it reads
it back. Without the variable it keeps the counts in memory only. That is how it fails under
seed 003's SFP (`filesystem`): the file moves with the volume, but the configuration does not,
so the app started afresh at the destination never reads it and counts from 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE_ENV = "USERCOUNT_FILE"
MAX_USER = 64


class Counts:
    """The counts, kept in `path` when there is one."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.counts = {str(k): int(v) for k, v in json.load(f).items()}

    def hit(self, user: str) -> int:
        with self.lock:
            n = self.counts[user] = self.counts.get(user, 0) + 1
            if self.path:
                tmp = f"{self.path}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(self.counts, f)
                os.replace(tmp, self.path)
            return n

    def get(self, user: str) -> int:
        with self.lock:
            return self.counts.get(user, 0)


def handler(counts: Counts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            _, what, user = (self.path.split("/", 2) + ["", ""])[:3]
            if what == "health":
                self._reply(200, "ok")
            elif what in ("hit", "count") and 0 < len(user) <= MAX_USER and user.isalnum():
                self._reply(200, str(counts.hit(user) if what == "hit" else counts.get(user)))
            else:
                self._reply(404, "no such path")

        def _reply(self, status: int, text: str) -> None:
            body = f"{text}\n".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="usercount", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8080, help="0: a free port")
    p.add_argument("--ready-file", help='written as "<pid> <port>" once it listens')
    args = p.parse_args(argv)
    counts = Counts(os.environ.get(STATE_ENV) or None)
    server = ThreadingHTTPServer(("0.0.0.0", args.port), handler(counts))
    server.daemon_threads = True
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {server.server_address[1]}\n")
        os.replace(tmp, args.ready_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
