"""The mechanics under `agent.transfer`: data types, framing, hashing, file helpers, and
the sending end of a connection (`FrameSender`). The protocol is described in
`agent.transfer`.

A frame is a 4-byte big-endian length N followed by N bytes of UTF-8 JSON (one object with a
"t" key); some frames are followed by raw payload bytes whose length the header gives. With
compression (hello's `compress: "zstd"`) everything the sender writes after its hello is one
zstd stream (`ZstdOut`, read back by `ZstdIn`): the same frames and payloads, compressed,
cut into zstd frames of at most `COMPRESS_CHUNK` bytes, each behind its 4-byte length.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import select
import shutil
import socket
import stat
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

import zstandard

# 1: no compression; 2: the hello may carry `compress`. A sender says 1 when it does not
# compress, so that a receiver that knows only 1 still takes it; a compressed stream says 2,
# which such a receiver refuses at the hello instead of misreading it.
PROTOCOL_VERSION = 1
PROTOCOL_VERSION_COMPRESS = 2
Compress = Literal["none", "zstd"]
COMPRESS_MODES: tuple[Compress, ...] = ("none", "zstd")
# level 3 (zstd's default): on a sample of libraries and Python sources here it keeps 0.33 of
# the bytes at 280 MB/s on one core, level 1 0.40 at 500 MB/s; a link slow enough to gain from
# compression (100 Mbit/s = 12.5 MB/s) is far below either, so the better ratio wins
ZSTD_LEVEL = 3
COMPRESS_CHUNK = 1 << 20  # raw bytes handed to the compressor at once
COMPRESS_DEPTH = 3  # compressed chunks the worker may hold ahead of the socket
MAX_ZSTD_FRAME = 8 << 20  # the most a receiver takes from one frame (a sender makes 1 MiB)
BLOCK_DIGEST_SIZE = 16
FILE_DIGEST_SIZE = 32
MAX_HEADER = 64 << 20
SOCKET_BUFFER = 8 << 20
SIOCOUTQ = 0x5411  # linux/sockios.h (TIOCOUTQ)
# linux/asm-generic/socket.h: older Pythons do not name it
SO_MAX_PACING_RATE: int = getattr(socket, "SO_MAX_PACING_RATE", 47)
RESULT_WAIT_S = 30.0
SEND_CHUNK = 8 << 20  # bytes per sendfile call, between progress reports and receiver checks
KEEPALIVE_SECONDS = 2.0
PARTIAL_PREFIX = ".partial-"
_LEN = struct.Struct(">I")
Progress = Callable[[int, int], None]
Digests = tuple[tuple[bytes, ...], bytes]
_Str = str | None
_CTX = ("peer", "file", "phase")


class TransferError(Exception):
    """A transfer failed; `peer`, `file` and `phase` say where (any of them may be None)."""

    def __init__(self, message: str, *, peer: _Str = None, file: _Str = None, phase: _Str = None):
        where = ", ".join(f"{k}={v}" for k, v in zip(_CTX, (peer, file, phase), strict=True) if v)
        super().__init__(f"{message} ({where})" if where else message)
        self.message, self.peer, self.file, self.phase = message, peer, file, phase


@dataclass(frozen=True)
class TransferStats:
    files: int
    bytes_on_wire: int
    bytes_total: int
    bytes_skipped: int
    seconds: float
    mode: Literal["full", "delta"]
    compress: Literal["none", "zstd"] = "none"  # bytes_on_wire is then what zstd made of them


@dataclass(frozen=True)
class FileEntry:
    """One path of a sent tree. `digest` = blake2b-256(size as 8 bytes BE || block digests)."""

    kind: Literal["file", "dir", "link"]
    size: int
    mode: int
    mtime_ns: int
    blocks: tuple[bytes, ...] = ()
    digest: bytes = b""
    target: str = ""  # symlink target
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Manifest:
    """What the receiver holds after a send: relative POSIX path -> entry."""

    block_size: int
    files: Mapping[str, FileEntry] = field(default_factory=dict)

    def to_json(self) -> str:
        """{"block_size": n, "files": {path: {kind, size, mode, mtime_ns, blocks, digest, ...}}}
        with `blocks` the concatenated block digests and `digest` in hex."""
        files = {
            p: {**e.__dict__, "blocks": b"".join(e.blocks).hex(), "digest": e.digest.hex()}
            for p, e in self.files.items()
        }
        return json.dumps({"block_size": self.block_size, "files": files}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw, n = json.loads(text), BLOCK_DIGEST_SIZE
        files = {}
        for p, e in raw["files"].items():
            blocks, digest = bytes.fromhex(e.pop("blocks")), bytes.fromhex(e.pop("digest"))
            split = tuple(blocks[i : i + n] for i in range(0, len(blocks), n))
            files[p] = FileEntry(**e, blocks=split, digest=digest)
        return cls(int(raw["block_size"]), files)


def file_digest(size: int, blocks: list[bytes] | tuple[bytes, ...]) -> bytes:
    h = hashlib.blake2b(size.to_bytes(8, "big"), digest_size=FILE_DIGEST_SIZE)
    for b in blocks:
        h.update(b)
    return h.digest()


def block_digest(data: memoryview | bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=BLOCK_DIGEST_SIZE).digest()


def read_exact(f: io.FileIO, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise TransferError("file shrank while being read", file=str(f.name), phase="read")
        got += n


def write_all(f: io.FileIO, view: memoryview) -> None:
    while view:
        view = view[f.write(view) or 0 :]


INLINE_WRITE_MAX = 64 << 10  # a write this small is done at once, not on the writer thread


class BlockWriter:
    """Writes blocks on a worker thread, so that disk writes overlap receiving and hashing.

    Fill `buffer()` then `write(f, n)` its first `n` bytes; `flush()` waits for every queued
    write (call it before closing a file) and raises the first write error (e.g. ENOSPC).
    """

    def __init__(self, block_size: int, depth: int = 4) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="transfer-writer")
        self._ring: deque[tuple[memoryview, Future[None] | None]] = deque(
            (memoryview(bytearray(block_size)), None) for _ in range(depth)
        )

    def buffer(self) -> memoryview:
        buf, pending = self._ring[0]
        if pending is not None:
            pending.result()
        return buf

    def write(self, f: io.FileIO, n: int) -> None:
        buf, _ = self._ring.popleft()
        if n <= INLINE_WRITE_MAX and all(p is None or p.done() for _, p in self._ring):
            # a small write with none queued before it (a small file's): the hand-off to the
            # thread costs more than the write; in order, as the file's offset advances
            write_all(f, buf[:n])
            self._ring.append((buf, None))
            return
        self._ring.append((buf, self._pool.submit(write_all, f, buf[:n])))

    def flush(self, check: bool = True) -> None:
        wait([p for _, p in self._ring if p is not None])
        for _, pending in self._ring:
            if check and pending is not None:
                pending.result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


HASH_READ_BYTES = 256 << 10  # what `hash_file` reads at once (then hashes block by block)


def hash_file(
    path: Path, size: int, block_size: int, cancel: threading.Event
) -> tuple[tuple[bytes, ...], bytes]:
    """Block digests and file digest of the first `size` bytes of `path` (must have them all)."""
    step = max(block_size, (HASH_READ_BYTES // block_size) * block_size)  # whole blocks
    view, blocks = memoryview(bytearray(step)), list[bytes]()
    with open(path, "rb", buffering=0) as f:
        for off in range(0, size, step):
            if cancel.is_set():
                raise TransferError("cancelled", file=str(path), phase="hash")
            n = min(step, size - off)
            read_exact(f, view[:n])
            blocks.extend(
                block_digest(view[b : min(b + block_size, n)]) for b in range(0, n, block_size)
            )
    return tuple(blocks), file_digest(size, blocks)


def describe(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "destination disk full"
    if isinstance(e, TimeoutError):
        return "timed out"
    if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return f"connection lost ({os.strerror(e.errno or 0)})"
    return str(e)


def stat_meta(st: os.stat_result) -> dict[str, int]:
    return {
        "mode": stat.S_IMODE(st.st_mode),
        "mtime_ns": st.st_mtime_ns,
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def apply_meta(path: Path, h: Mapping[str, Any], kind: str) -> None:
    if os.geteuid() == 0:
        os.chown(path, int(h["uid"]), int(h["gid"]), follow_symlinks=False)
    if kind != "link":
        os.chmod(path, int(h["mode"]))
    if kind != "dir":
        os.utime(path, ns=(int(h["mtime_ns"]),) * 2, follow_symlinks=False)


def mirror_commit(
    dest: Path, partial: Path, headers: Mapping[str, Mapping[str, Any]], received: set[str]
) -> None:
    """Make `dest` hold exactly the entries of `headers` (rel -> header, parents first): delete
    what is not listed, move `received` entries from `partial`, refresh metadata of the rest."""
    kinds = {rel: "file" if h["t"] == "patch" else str(h["t"]) for rel, h in headers.items()}
    old = scan_tree(dest, skip_partial=True)
    for rel, st in sorted(old, key=lambda x: x[0].count("/"), reverse=True):
        kind, is_dir = kinds.get(rel), stat.S_ISDIR(st.st_mode)
        if kind is None or (kind == "dir") != is_dir:
            (shutil.rmtree if is_dir else os.unlink)(dest / rel)
    for rel, kind in kinds.items():
        if kind == "dir":
            (dest / rel).mkdir(mode=0o700, exist_ok=True)
        elif rel in received:
            os.replace(partial / rel, dest / rel)
        else:
            apply_meta(dest / rel, headers[rel], kind)
    for rel in reversed([r for r, k in kinds.items() if k == "dir"]):
        apply_meta(dest / rel, headers[rel], "dir")


def entry_from_stat(st: os.stat_result, **kw: Any) -> FileEntry:
    kind: Literal["file", "dir", "link"] = (
        "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
    )
    size = st.st_size if kind == "file" else 0
    return FileEntry(
        kind, size, stat.S_IMODE(st.st_mode), st.st_mtime_ns, uid=st.st_uid, gid=st.st_gid, **kw
    )


def scan_tree(root: Path, skip_partial: bool = False) -> list[tuple[str, os.stat_result]]:
    """Directories, regular files and symlinks under `root` (lstat), parents before children.

    Other file types (sockets, FIFOs, devices) are left out: they cannot be copied as data.
    """
    out: list[tuple[str, os.stat_result]] = []

    def walk(d: Path, prefix: str) -> None:
        with os.scandir(d) as it:
            items = sorted(it, key=lambda e: e.name)
        for e in items:
            if skip_partial and not prefix and e.name.startswith(PARTIAL_PREFIX):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:  # gone since the listing (a service's renamed temp file)
                continue
            rel = prefix + e.name
            if stat.S_ISDIR(st.st_mode):
                out.append((rel, st))
                walk(Path(e.path), rel + "/")
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                out.append((rel, st))

    walk(root, "")
    return out


def safe_rel(rel: object) -> str:
    """`rel` if it is a clean relative POSIX path that stays inside the tree, else raise."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise TransferError(f"bad path {rel!r}", phase="receive")
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")):
        raise TransferError(f"unsafe path {rel!r}", phase="receive")
    return str(p)


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes this end queued that the peer has not acknowledged yet (SIOCOUTQ); 0 if the
    kernel cannot say."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0" * 4))[0])
    except OSError:
        return 0


def tune_socket(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)


def pace_socket(sock: socket.socket, pace_bps: int) -> None:
    """Make TCP pace what `sock` sends at `pace_bps` bit/s: SO_MAX_PACING_RATE, in bytes/s (at
    least 1). A reservation's meter polices: an unpaced copy's bursts overflow its bucket and
    the copy gets about 0.7 of the rate; a paced one gets all of it. TCP paces by itself once
    the option is set (no fq qdisc needed). The value goes as 64 bits, which a 64-bit kernel
    reads whole, so rates above 17 Gbit/s (2**31 bytes/s, a C int's limit) are not cut."""
    if pace_bps <= 0:
        raise ValueError(f"a pacing rate must be positive, got {pace_bps} bit/s")
    rate = struct.pack("@Q", max(1, pace_bps // 8))
    sock.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, rate)


class Source(Protocol):
    """What frames are read from: a socket, or `ZstdIn` over one."""

    def recv_into(self, buffer: memoryview, nbytes: int, /) -> int: ...


class ZstdOut:
    """zstd on the sending stream. `write` gathers bytes and hands each `COMPRESS_CHUNK` to a
    worker thread that compresses it (zstd drops the GIL) while this thread sends the chunks
    compressed before it: compression overlaps sending, at most `COMPRESS_DEPTH` chunks ahead.
    Each chunk goes as one zstd frame (content size and checksum in it) behind a 4-byte
    big-endian length, so that the receiver can decode it whole, within a bounded buffer;
    `flush` sends what is gathered as a frame of its own and returns once all is sent. `sent`
    counts the bytes on the wire, `raw` what was written."""

    def __init__(self, sock: socket.socket, level: int = ZSTD_LEVEL) -> None:
        self.sock, self.sent, self.raw = sock, 0, 0
        self._cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="transfer-zstd")
        self._pending = bytearray()
        self._jobs: deque[Future[bytes]] = deque()

    def _job(self, data: bytearray) -> bytes:
        out = self._cctx.compress(data)
        return _LEN.pack(len(out)) + out

    def write(self, data: bytes | memoryview) -> None:
        self._pending += data
        self.raw += len(data)
        while len(self._pending) >= COMPRESS_CHUNK:
            self._submit(COMPRESS_CHUNK)
            self._drain(COMPRESS_DEPTH)

    def flush(self) -> None:
        if self._pending:
            self._submit(len(self._pending))
        self._drain(0)

    def close(self) -> None:
        """Stop the worker (after the chunk it is on); what was not sent is dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, n: int) -> None:
        data, self._pending = self._pending[:n], self._pending[n:]
        self._jobs.append(self._pool.submit(self._job, data))

    def _drain(self, keep: int) -> None:
        while self._jobs and (len(self._jobs) > keep or self._jobs[0].done()):
            out = self._jobs.popleft().result()
            self.sock.sendall(out)
            self.sent += len(out)


class ZstdIn:
    """The receiving end of `ZstdOut`: a `Source` of the decompressed stream. It reads one
    frame at a time, only when the bytes before it are used up, and refuses a frame that says
    it holds more than `MAX_ZSTD_FRAME` bytes (a run of zero pages cannot blow up memory).
    `received` counts the bytes read from the socket. A corrupt frame raises `TransferError`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.received = sock, 0
        self._dctx = zstandard.ZstdDecompressor()
        self._out, self._pos = memoryview(b""), 0

    def recv_into(self, buffer: memoryview, nbytes: int, /) -> int:
        if self._pos == len(self._out) and not self._next():
            return 0
        n = min(nbytes, len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def _next(self) -> bool:
        """Read and decode the next frame; False at the end of the stream."""
        head = bytearray(_LEN.size)
        try:
            recv_exact_into(self.sock, memoryview(head))
        except EOFError:
            return False
        (n,) = _LEN.unpack(head)
        if n > MAX_ZSTD_FRAME + (MAX_ZSTD_FRAME >> 7) + 1024:  # zstd's bound on its output
            raise TransferError(f"compressed frame of {n} bytes is too large", phase="receive")
        frame = bytearray(n)
        recv_exact_into(self.sock, memoryview(frame))
        self.received += _LEN.size + n
        try:
            size = zstandard.frame_content_size(frame)
            if not 0 <= size <= MAX_ZSTD_FRAME:
                raise TransferError(f"compressed frame says {size} bytes", phase="receive")
            self._out, self._pos = memoryview(self._dctx.decompress(frame)), 0
        except zstandard.ZstdError as e:
            raise TransferError(f"corrupt compressed stream: {e}", phase="receive") from e
        return True


def encode_frame(header: Mapping[str, Any]) -> bytes:
    data = json.dumps(header, separators=(",", ":")).encode()
    return _LEN.pack(len(data)) + data


def recv_exact_into(sock: Source, view: memoryview) -> None:
    """Fill `view` from `sock`; EOFError if the peer closes first."""
    got, want = 0, len(view)
    while got < want:
        n = sock.recv_into(view[got:], want - got)
        if n == 0:
            raise EOFError("connection closed by peer")
        got += n


def recv_frame(sock: Source) -> tuple[dict[str, Any], int]:
    """One header and its size on the wire (length prefix included)."""
    head = bytearray(_LEN.size)
    recv_exact_into(sock, memoryview(head))
    (n,) = _LEN.unpack(head)
    if n > MAX_HEADER:
        raise TransferError(f"header of {n} bytes is too large", phase="receive")
    body = bytearray(n)
    recv_exact_into(sock, memoryview(body))
    obj = json.loads(body)
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise TransferError("malformed header", phase="receive")
    return obj, n + _LEN.size


class FrameSender:
    """The sending end of one connection: frames, file payloads, byte and progress counts.

    Once `zout` is set (after the hello) what it writes goes through zstd; `on_wire` then
    counts the compressed bytes, `payload` and `done` still count the files' bytes."""

    def __init__(self, sock: socket.socket, total: int, progress: Progress | None) -> None:
        self.sock, self.total, self.progress = sock, total, progress
        self.clear = self.payload = self.done = 0  # clear: bytes sent uncompressed
        self.zout: ZstdOut | None = None
        self.last_send = time.monotonic()
        self.phase, self.file = "send", ""

    @property
    def on_wire(self) -> int:
        return self.clear + (self.zout.sent if self.zout is not None else 0)

    def write(self, data: bytes | memoryview) -> None:
        if self.zout is None:
            self.sock.sendall(data)
            self.clear += len(data)
        else:
            self.zout.write(data)

    def flush(self) -> None:
        """Put on the wire what compression still holds (before waiting on the receiver)."""
        if self.zout is not None:
            self.zout.flush()

    def frame(self, header: dict[str, Any]) -> None:
        self.write(encode_frame(header))
        self.last_send = time.monotonic()

    def sent(self, n: int, payload: bool = True) -> None:
        if payload:
            self.payload += n
            if select.select([self.sock], [], [], 0)[0]:  # the receiver speaks to fail or ack
                self.result()
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def result(self) -> None:
        """The receiver's result. While what this end queued still drains (its send queue
        shrinks: a reservation's meter or a slow link paces it) the wait goes on; a receiver
        that says nothing while nothing drains for the socket's timeout fails it."""
        wait_s = self.sock.gettimeout() or RESULT_WAIT_S
        queued, deadline = unsent_bytes(self.sock), time.monotonic() + wait_s
        while not select.select([self.sock], [], [], min(1.0, wait_s))[0]:
            now = unsent_bytes(self.sock)
            if now < queued:
                queued, deadline = now, time.monotonic() + wait_s
            elif time.monotonic() >= deadline:
                raise TransferError(f"no answer from the receiver in {wait_s:g} s")
        try:
            h, _ = recv_frame(self.sock)
        except EOFError:
            raise TransferError("receiver closed the connection") from None
        if h.get("t") != "result" or not h.get("ok"):
            why = f"receiver failed: {h.get('error', h)}"
            raise TransferError(why, file=h.get("file") or self.file, phase="remote")

    def whole(self, f: io.FileIO, h: dict[str, Any], hashing: Future[Digests]) -> Digests:
        """Zero-copy send while a worker thread hashes the same bytes from the page cache
        (uncompressed only: zstd must read the bytes anyway)."""
        assert self.zout is None, "sendfile bypasses compression"
        self.frame({"t": "file", **h})
        for off in range(0, h["size"], SEND_CHUNK):
            want = min(SEND_CHUNK, h["size"] - off)
            if self.sock.sendfile(f, off, want) != want:
                raise TransferError("file shrank while being sent")
            self.clear += want
            self.sent(want)
        blocks, digest = hashing.result()
        self.frame({"t": "sum", "digest": digest.hex()})
        return blocks, digest

    def whole_read(
        self, f: io.FileIO, h: dict[str, Any], buf: memoryview, bs: int | None = None
    ) -> Digests:
        """One read pass: hash each block and send it. For a file the service may be writing
        while a live round sends it (a database's WAL, a log): what is hashed is what was
        sent, so the receiver's check holds; the final round, frozen, sends it settled.
        Reads `len(buf)` bytes at once, a multiple of the block size `bs` (default: one)."""
        size, step, bs = h["size"], len(buf), bs or len(buf)
        blocks: list[bytes] = []
        self.frame({"t": "file", **h})
        for off in range(0, size, step):
            view = buf[: min(step, size - off)]
            read_exact(f, view)
            blocks.extend(block_digest(view[b : b + bs]) for b in range(0, len(view), bs))
            self.write(view)
            self.sent(len(view))
        digest = file_digest(size, blocks)
        self.frame({"t": "sum", "digest": digest.hex()})
        return tuple(blocks), digest

    def unchanged(self, h: dict[str, Any], prev: FileEntry) -> Digests:
        """A file known not to have changed: a patch without blocks, nothing read."""
        self.frame({"t": "patch", **h, "base_size": prev.size})
        self.sent(h["size"], payload=False)
        self.frame({"t": "end", "digest": prev.digest.hex()})
        return prev.blocks, prev.digest

    def patch(self, f: io.FileIO, h: dict[str, Any], prev: FileEntry, buf: memoryview) -> Digests:
        """One read pass: hash each block, send those whose digest differs from `prev`."""
        size, bs, blocks = h["size"], len(buf), []
        self.frame({"t": "patch", **h, "base_size": prev.size})
        for i, off in enumerate(range(0, size, bs)):
            view = buf[: min(bs, size - off)]
            read_exact(f, view)
            blocks.append(block_digest(view))
            changed = i >= len(prev.blocks) or prev.blocks[i] != blocks[-1]
            if changed:
                self.frame({"t": "blk", "i": i, "n": len(view)})
                self.write(view)
            elif time.monotonic() - self.last_send > KEEPALIVE_SECONDS:
                self.frame({"t": "nop"})
                self.flush()  # a keepalive compression holds back keeps nothing alive
            self.sent(len(view), payload=changed)
        digest = file_digest(size, blocks)
        self.frame({"t": "end", "digest": digest.hex()})
        return tuple(blocks), digest
