"""Move a directory tree (CRIU images, a container's /data) between site agents over one TCP link.

`Receiver(dest).start()` listens and serves one transfer; `send_dir(src, host, port)` sends the
tree and returns its `Manifest`; passing that manifest as `previous` to the next send of the same
tree to the same receiver sends only changed `block_size` blocks (iterative pre-copy). The
receiver builds the new tree in `dest/.partial-<id>` and moves it into place only once every
file is verified, so a failed transfer leaves `dest` as it was. After a successful transfer
`dest` mirrors the source (entries the sender did not list are deleted; other `.partial-*`
top-level names are ignored). Regular files, directories and symlinks travel with mode, file
mtime and (when root) owner; other file types are skipped. The source must not change during a
send: a file that does fails the transfer (digest mismatch or short read), never corrupts it.
In delta mode the receiver trusts its copy of unchanged files (it checks only their size).
With `compress="zstd"` everything after the hello travels zstd-compressed, a chunk at a time on
a worker thread while earlier chunks are sent; digests, verification and commit are the same,
over the uncompressed bytes (`agent.compression` measures whether it pays on a given link).

Wire format (frames: 4-byte big-endian length + JSON object with a "t" key; see transfer_wire),
sender -> receiver, in order:
  hello {v, mode: "full"|"delta", block_size, total[, compress: "none"|"zstd"]}
        v is 1 without compression (what a receiver of version 1 reads), 2 with `compress`
  with compress "zstd", the bytes the sender writes after the hello (every frame below and
        every payload) are cut into pieces of at most 1 MiB, each sent as a 4-byte big-endian
        length L + L bytes of one zstd frame (content size and checksum set); a piece ends
        early at keepalives and before `done`'s answer is awaited. The receiver's replies
        stay uncompressed. Nothing else changes.
  then per entry, parents before children (common keys: path, mode, mtime_ns, uid, gid):
    dir   {...}
    link  {..., target}
    file  {..., size} + `size` raw bytes (sendfile) + sum {digest}
    patch {..., size, base_size} + any of: blk {i, n} + `n` raw bytes (new content of block i,
          ascending) | nop {} (keepalive while hashing unchanged data); then end {digest}.
          No blk and size == base_size means "unchanged": the receiver keeps its copy.
  done {}
receiver -> sender: result {ok: true} after commit, or result {ok: false, error} at any time
(then the receiver drains and closes). Files are hashed per block (blake2b-128); a file's digest
is blake2b-256(size as 8 bytes big-endian || block digests). The receiver recomputes it over the
bytes it writes (received blocks and copied unchanged blocks of its previous version).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from agent import transfer_wire as wire
from agent.transfer_wire import FileEntry, Manifest, TransferError, TransferStats

__all__ = ["FileEntry", "Manifest", "Receiver", "TransferError", "TransferStats", "send_dir"]

DRAIN_SECONDS = 5.0


# a page: CRIU's page images change page by page (a Python service's 12 MB of pages, dumped
# twice a second apart, differed in 0.84 MB of 4 KiB blocks, in all 12 of its 1 MiB blocks);
# hashing 4 KiB blocks reads a 512 MiB image in 0.67 s here, 1 MiB blocks in 0.60 s
BLOCK_SIZE = 4096
CHUNK_BYTES = 1 << 20  # what the receiver reads, writes and hands over at once
# a settled file smaller than this is read, hashed and sent in one pass, as one that may change:
# handing it to the hashing worker and waiting for its digest cost more than reading it. A lazy
# dump's images (one of 1.5 MB, 40 of 8 kB or less) went over loopback in 22-26 ms with every
# file zero-copy, 13-20 ms with this threshold, 16-23 ms reading the large one too
ZERO_COPY_MIN_BYTES = 64 << 10


def send_dir(
    src_dir: Path,
    host: str,
    port: int,
    *,
    previous: Manifest | None = None,
    block_size: int = BLOCK_SIZE,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 30.0,
    immutable: Callable[[str], bool] | None = None,
    settled: Callable[[str], bool] | None = None,
    pace_bps: int | None = None,
    compress: wire.Compress = "none",
    compress_level: int = wire.ZSTD_LEVEL,
) -> tuple[TransferStats, Manifest]:
    """Send the tree under `src_dir` to a `Receiver` at host:port; return stats and manifest.

    With `previous` (the manifest of the last send of this tree to this receiver, same
    `block_size`) only changed blocks travel. An exception raised by `progress(done, total)`
    aborts the transfer and propagates. Receiver or network failures raise `TransferError`.
    `immutable(rel)` names files whose content never changes once written (CRIU pre-dump
    images): in delta mode such a file with its previous size and mtime is not read again.
    `settled(rel)` names files nothing writes while they are sent (checkpoint images): they go
    zero-copy (sendfile) while a worker hashes them; any other file is read once, hashed and
    sent as read, since the service may be writing it during a live round.
    `pace_bps` (bit/s): the kernel paces the connection at that rate (a reservation's, so that
    its meter does not drop the copy's bursts: `transfer_wire.pace_socket`); None: unpaced.
    `compress="zstd"`: the stream goes zstd-compressed at `compress_level` (every file is then
    read, hashed and compressed in one pass; none goes zero-copy). It pays where the link is
    slower than the compressor: `migration.compression.choose` decides from a sample.
    """
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    if pace_bps is not None and pace_bps <= 0:
        raise ValueError(f"pace_bps must be positive, got {pace_bps}")
    if compress not in wire.COMPRESS_MODES:
        raise ValueError(f"compress must be one of {wire.COMPRESS_MODES}, got {compress!r}")
    if previous is not None and previous.block_size != block_size:
        raise ValueError(f"block_size {block_size} != previous manifest's {previous.block_size}")
    src, peer, started = Path(src_dir), f"{host}:{port}", time.monotonic()
    mode: Literal["full", "delta"] = "full" if previous is None else "delta"
    tree = wire.scan_tree(src)
    total = sum(st.st_size for _, st in tree if stat.S_ISREG(st.st_mode))
    entries: dict[str, FileEntry] = {}
    s, buf, cancel = None, memoryview(bytearray(block_size)), threading.Event()
    chunk = memoryview(bytearray(chunk_size(block_size)))
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ThreadPoolExecutor(1, thread_name_prefix="transfer-hash") as pool,
        ):
            try:
                wire.tune_socket(sock)
                if pace_bps is not None:
                    wire.pace_socket(sock, pace_bps)
                s = wire.FrameSender(sock, total, progress)
                hello: dict[str, Any] = {"v": wire.PROTOCOL_VERSION, "mode": mode}
                if compress != "none":
                    hello |= {"v": wire.PROTOCOL_VERSION_COMPRESS, "compress": compress}
                s.frame({"t": "hello", **hello, "block_size": block_size, "total": total})
                if compress == "zstd":
                    s.zout = wire.ZstdOut(sock, compress_level)
                for rel, st in tree:
                    s.file, path, h = rel, src / rel, {"path": rel, **wire.stat_meta(st)}
                    prev = previous.files.get(rel) if previous is not None else None
                    if stat.S_ISDIR(st.st_mode):
                        s.frame({"t": "dir", **h})
                        entries[rel] = wire.entry_from_stat(st)
                    elif stat.S_ISLNK(st.st_mode):
                        s.frame({"t": "link", **h, "target": (target := os.readlink(path))})
                        entries[rel] = wire.entry_from_stat(st, target=target)
                    elif (
                        prev is not None and prev.kind == "file" and _kept(rel, st, prev, immutable)
                    ):
                        blocks, digest = s.unchanged({**h, "size": st.st_size}, prev)
                        entries[rel] = wire.entry_from_stat(st, blocks=blocks, digest=digest)
                    else:
                        h["size"] = st.st_size
                        try:
                            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
                        except FileNotFoundError:
                            # renamed or removed since the scan: a round while the service runs
                            # (its temp file of an atomic write); the frozen round sees it settled
                            continue
                        with f:
                            if prev is not None and prev.kind == "file":
                                blocks, digest = s.patch(f, h, prev, buf)
                            elif (
                                s.zout is None
                                and settled is not None
                                and st.st_size >= ZERO_COPY_MIN_BYTES
                                and settled(rel)
                            ):  # zero-copy
                                job = pool.submit(
                                    wire.hash_file, path, st.st_size, block_size, cancel
                                )
                                blocks, digest = s.whole(f, h, job)
                            else:  # read once, about 1 MiB at a time: hash (compress) and send;
                                # a file that may change while it is sent is sent as hashed
                                blocks, digest = s.whole_read(f, h, chunk, block_size)
                        entries[rel] = wire.entry_from_stat(st, blocks=blocks, digest=digest)
                s.phase, s.file = "commit", ""
                s.frame({"t": "done"})
                s.flush()
                s.result()
            finally:
                cancel.set()  # stop the hashing worker before the pool joins it
                if s is not None and s.zout is not None:
                    s.zout.close()
    except (OSError, TransferError) as e:
        phase, file = (s.phase, s.file) if s else ("connect", "")
        if isinstance(e, OSError):
            raise TransferError(wire.describe(e), peer=peer, file=file, phase=phase) from e
        raise TransferError(e.message, peer=peer, file=e.file or file, phase=e.phase) from e
    assert s is not None
    files, seconds = sum(e.kind != "dir" for e in entries.values()), time.monotonic() - started
    stats = TransferStats(files, s.on_wire, total, total - s.payload, seconds, mode, compress)
    return stats, Manifest(block_size, entries)


def chunk_size(block_size: int) -> int:
    """Bytes read, hashed and handed on at once: whole blocks, about `CHUNK_BYTES`."""
    return max(block_size, (CHUNK_BYTES // block_size) * block_size)


def _kept(
    rel: str, st: os.stat_result, prev: FileEntry, immutable: Callable[[str], bool] | None
) -> bool:
    """An immutable file the receiver already holds as it is (rsync's size + mtime check)."""
    if immutable is None or not immutable(rel):
        return False
    return prev.size == st.st_size and prev.mtime_ns == st.st_mtime_ns


class Receiver:
    """Serves exactly one transfer into `dest_dir` from a background thread."""

    def __init__(
        self,
        dest_dir: Path,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        timeout: float = 30.0,
        on_file: Callable[[str, Path], None] | None = None,
    ) -> None:
        """`on_file(rel, path)`: called in the receiving thread as each file has arrived
        whole, at `path` (not yet in place: the transfer commits at its end); it must not
        raise, and must be quick (it holds the receive up)."""
        self.dest_dir, self.host, self.port, self.timeout = Path(dest_dir), host, port, timeout
        self.on_file = on_file
        self.peer: str | None = None
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop, self._done, self._lock = threading.Event(), threading.Event(), threading.Lock()
        self._stats: TransferStats | None = None
        self._error: TransferError | None = None

    def start(self) -> int:
        """Bind, listen and serve one transfer in the background; return the bound port."""
        if self._thread is not None:
            raise RuntimeError("Receiver already started")
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        self._listener = socket.create_server((self.host, self.port), backlog=1)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        name = f"transfer-rx-{self.port}"
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        return self.port

    def wait(self, timeout: float | None = None) -> TransferStats:
        """Stats of the finished transfer; `TransferError` if it failed or is not done in time."""
        if self._thread is None:
            raise RuntimeError("Receiver not started")
        if not self._done.wait(timeout):
            why = f"no transfer finished within {timeout}s"
            raise TransferError(why, peer=self.peer, phase="wait")
        if self._error is not None:
            raise self._error
        assert self._stats is not None
        return self._stats

    def close(self) -> None:
        """Stop listening, abort a transfer in progress (its partial files are removed), join."""
        self._stop.set()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        try:
            conn = self._accept()
            with conn:
                self._stats = _Session(self, conn).run()
        except TransferError as e:
            self._error = e
        finally:
            self._done.set()

    def _accept(self) -> socket.socket:
        assert self._listener is not None
        with self._listener:
            while not self._stop.is_set():
                try:
                    conn, addr = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError as e:
                    raise TransferError(wire.describe(e), phase="accept") from e
                self.peer = f"{addr[0]}:{addr[1]}"
                conn.settimeout(self.timeout)
                wire.tune_socket(conn)
                with self._lock:
                    self._conn = conn
                if self._stop.is_set():  # close() ran before we published the connection
                    conn.close()
                    break
                return conn
        raise TransferError("receiver closed before a transfer arrived", phase="accept")


class _Session:
    """One transfer on the receiving side: `run` commits, or cleans up and raises."""

    def __init__(self, rx: Receiver, conn: socket.socket) -> None:
        self.rx, self.conn, self.dest = rx, conn, rx.dest_dir
        self.partial = self.dest / f"{wire.PARTIAL_PREFIX}{secrets.token_hex(6)}"
        self.headers: dict[str, dict[str, Any]] = {}  # rel -> its header, in the sender's order
        self.received: set[str] = set()  # entries built in self.partial
        self.clear = self.payload = self.total = self.bs = self.chunk = 0
        self.phase, self.file = "handshake", ""
        self.writer: wire.BlockWriter | None = None
        self.src: wire.Source = conn  # what frames and payloads are read from
        self.zin: wire.ZstdIn | None = None
        self.compress: wire.Compress = "none"

    @property
    def on_wire(self) -> int:
        return self.clear + (self.zin.received if self.zin is not None else 0)

    def run(self) -> TransferStats:
        started = time.monotonic()
        try:
            mode = self.receive()
            self.phase, self.file = "commit", ""
            wire.mirror_commit(self.dest, self.partial, self.headers, self.received)
            self.conn.sendall(wire.encode_frame({"t": "result", "ok": True}))
        except (TransferError, EOFError, OSError, ValueError, KeyError, TypeError) as e:
            err = self.error(e)
            self.abort(err)
            raise err from e
        finally:
            if self.writer is not None:
                self.writer.close()
            shutil.rmtree(self.partial, ignore_errors=True)
        files, seconds = sum(h["t"] != "dir" for h in self.headers.values()), time.monotonic()
        skipped, seconds = self.total - self.payload, seconds - started
        return TransferStats(files, self.on_wire, self.total, skipped, seconds, mode, self.compress)

    def error(self, e: Exception) -> TransferError:
        ctx = {"peer": self.rx.peer, "file": self.file, "phase": self.phase}
        if isinstance(e, TransferError):
            return TransferError(e.message, **{**ctx, "phase": e.phase or self.phase})
        if self.rx._stop.is_set() and isinstance(e, EOFError | OSError):
            return TransferError("cancelled by Receiver.close()", **ctx)
        if isinstance(e, EOFError):
            return TransferError("sender hung up mid-transfer", **ctx)
        if isinstance(e, OSError):
            return TransferError(wire.describe(e), **ctx)
        return TransferError(f"protocol error: {e!r}", **ctx)

    def abort(self, err: TransferError) -> None:
        """Tell the sender why (best effort), then drain until it hangs up so that it reads it."""
        if self.rx._stop.is_set():
            return
        with contextlib.suppress(OSError):
            self.conn.settimeout(1.0)
            reply = {"t": "result", "ok": False, "error": err.message, "file": err.file}
            self.conn.sendall(wire.encode_frame(reply))
            self.conn.shutdown(socket.SHUT_WR)
            deadline, sink = time.monotonic() + DRAIN_SECONDS, bytearray(1 << 16)
            while time.monotonic() < deadline and self.conn.recv_into(sink):
                pass

    def frame(self, *expect: str) -> dict[str, Any]:
        h, n = wire.recv_frame(self.src)
        if self.zin is None:
            self.clear += n
        if expect and h["t"] not in expect:
            raise TransferError(f"expected {'/'.join(expect)}, got {h['t']!r}")
        return h

    def receive(self) -> Literal["full", "delta"]:
        h = self.frame("hello")
        v, compress = h.get("v"), h.get("compress", "none")
        known = (v == wire.PROTOCOL_VERSION and compress == "none") or (
            v == wire.PROTOCOL_VERSION_COMPRESS and compress in wire.COMPRESS_MODES
        )
        if not known or h.get("mode") not in ("full", "delta"):
            raise TransferError(f"unsupported hello {h!r}")
        mode: Literal["full", "delta"] = h["mode"]
        self.compress = compress
        if compress == "zstd":
            self.src = self.zin = wire.ZstdIn(self.conn)
        self.bs = int(h["block_size"])
        if not 0 < self.bs <= 1 << 30:
            raise TransferError(f"bad block size {self.bs}")
        # the writer's buffers hold many blocks: one hand-off per chunk, not per 4 KiB block
        self.chunk = chunk_size(self.bs)
        self.writer = wire.BlockWriter(self.chunk)
        for stale in self.dest.glob(wire.PARTIAL_PREFIX + "*"):  # left by a crashed receiver
            shutil.rmtree(stale, ignore_errors=True)
        self.partial.mkdir(mode=0o700)
        self.phase = "receive"
        while (h := self.frame("dir", "link", "file", "patch", "done"))["t"] != "done":
            self.file = rel = wire.safe_rel(h.get("path"))
            parent = rel.rpartition("/")[0]
            if rel in self.headers or (parent and self.headers.get(parent, {}).get("t") != "dir"):
                raise TransferError("duplicate path, or its parent directory was not sent")
            self.headers[rel], out, t = h, self.partial / rel, h["t"]
            if t == "dir":
                out.mkdir(mode=0o700)
                continue
            self.total += int(h.get("size", 0))
            if t == "link":
                os.symlink(str(h["target"]), out)
            elif t == "file":
                self.recv_file(out, int(h["size"]))
            elif not self.recv_patch(rel, out, int(h["size"]), int(h["base_size"])):
                continue  # unchanged: keep our copy
            wire.apply_meta(out, h, "link" if t == "link" else "file")
            self.received.add(rel)
            if t != "link" and self.rx.on_file is not None:
                self.rx.on_file(rel, out)
        return mode

    @contextlib.contextmanager
    def output(self, path: Path) -> Iterator[io.FileIO]:
        """`path` opened for the writer thread; every queued write is done before it closes."""
        assert self.writer is not None
        with open(path, "wb", buffering=0) as f:
            try:
                yield f
            finally:
                self.writer.flush(check=False)
        self.writer.flush()

    def blocks_in(
        self,
        out: io.FileIO,
        start: int,
        end: int,
        blocks: list[bytes],
        src: io.FileIO | None = None,
    ) -> None:
        """Bytes [start, end) (block aligned) from the socket, or from `src` (our previous
        version) if given, hashed block by block and queued for writing to `out`."""
        assert self.writer is not None
        if src is not None:
            src.seek(start)
        for off in range(start, end, self.chunk):
            buf, n = self.writer.buffer(), min(self.chunk, end - off)
            if src is None:
                wire.recv_exact_into(self.src, buf[:n])
                self.payload += n
                if self.zin is None:
                    self.clear += n
            else:
                wire.read_exact(src, buf[:n])
            for b in range(0, n, self.bs):
                blocks.append(wire.block_digest(buf[b : min(b + self.bs, n)]))
            self.writer.write(out, n)

    def check(self, h: dict[str, Any], size: int, blocks: list[bytes]) -> None:
        if bytes.fromhex(str(h["digest"])) != wire.file_digest(size, blocks):
            self.phase = "verify"
            raise TransferError("checksum mismatch")

    def recv_file(self, out: Path, size: int) -> None:
        blocks: list[bytes] = []
        with self.output(out) as f:
            self.blocks_in(f, 0, size, blocks)
        self.check(self.frame("sum"), size, blocks)

    def recv_patch(self, rel: str, out: Path, size: int, base_size: int) -> bool:
        """Merge the changed blocks into a copy of our previous version; False if unchanged."""
        base = self.dest / rel
        st = os.lstat(base) if os.path.lexists(base) else None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != base_size:
            raise TransferError("receiver does not hold the previous version", phase="delta")
        blocks: list[bytes] = []
        pos, f = 0, None
        with contextlib.ExitStack() as stack:
            src = stack.enter_context(open(base, "rb", buffering=0))
            while (h := self.frame("blk", "nop", "end"))["t"] != "end":
                if h["t"] == "nop":
                    continue
                off, n = int(h["i"]) * self.bs, int(h["n"])
                if off < pos or off >= size or n != min(self.bs, size - off):
                    raise TransferError(f"bad block frame {h!r}")
                if off > max(pos, base_size):  # a gap we cannot fill from our copy
                    raise TransferError("blocks missing beyond the end of the previous version")
                f = f or stack.enter_context(self.output(out))
                self.blocks_in(f, pos, off, blocks, src)
                self.blocks_in(f, off, off + n, blocks)
                pos = off + n
            if f is None and size == base_size:
                return False
            if size > max(pos, base_size):
                raise TransferError("blocks missing beyond the end of the previous version")
            f = f or stack.enter_context(self.output(out))
            self.blocks_in(f, pos, size, blocks, src)
        self.check(h, size, blocks)
        return True
