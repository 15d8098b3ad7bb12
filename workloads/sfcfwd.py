"""sfcfwd: a service-function-chain function that forwards in user space, counting and filtering
per flow (stdlib only, one file; it never imports the project).

Run inside a service container as ``python3 /data/sfcfwd.py --memory 32MiB --deny udp/5001``. It
needs CAP_NET_RAW (a packet socket). The controller steers the chain's frames to this function's
MAC (see controller/steering.py); the kernel of the function's namespace does not forward them
(``net.ipv4.ip_forward`` is 0 there), so every frame of the chain passes through this process:

* a frame for our MAC carrying IPv4 that is not for our own address is a chain frame;
* its flow (protocol, source and destination address and port) is counted: packets and bytes;
* a flow that a ``--deny PROTO/PORT`` rule matches (either port) is dropped and counted as such;
* the others leave again from our MAC, TTL one less (the switch then sets the next hop's MAC).

State that a migration must carry, all in this process's memory: the flow table, the totals,
and ``--memory`` bytes of anonymous memory whose first MiB is filled from ``--seed`` (its SHA-256
is the fingerprint, as memhog's) and never written again.

Control on UDP ``--control-port`` (default 9999) of our own address: ``STATS`` answers one JSON
object: ``forwarded``, ``dropped``, ``bytes``, ``flows`` (``"tcp 10.0.0.100:40000>10.0.0.31:8080"
-> [packets, bytes, dropped]``, at most ``--max-flows``, the rest counted in ``flows_over``),
``fingerprint``, ``pid``, ``started`` (wall clock at start: it survives a migration, a restart
does not), ``oversize`` (frames too large to send again). ``--ready-file`` gets
``"<pid> <control port>"`` once it runs.

The packet socket is not bound to an interface: CRIU restores it in the destination's namespace,
where ``eth0`` has another interface index; sends name ``eth0`` and are resolved each time. One
thread, ``poll(2)`` (no epoll instance to checkpoint), non-blocking sockets.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import random
import re
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_HOST = 0
SIOCGIFADDR = 0x8915
SIOCGIFHWADDR = 0x8927
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}
NAMES = {v: k for k, v in PROTOS.items()}
FINGERPRINT_BYTES = 1 << 20
MAX_FRAME = 1514  # what the link carries (offloads are off on every instance's veth)
BURST = 64  # frames handled per poll wake-up before the control socket gets a turn


def parse_size(text: str) -> int:
    """Bytes in '32MiB', '1G', '512k', '100MB', '4096' (k/M/G binary; KB/MB/GB SI)."""
    units = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1 << 20, "mb": 10**6,
             "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30}  # fmt: skip
    m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$", text.lower())
    if m is None or m.group(2) not in units:
        raise ValueError(f"cannot read {text!r} as a size (e.g. 32MiB, 1G, 4096)")
    return int(float(m.group(1)) * units[m.group(2)])


def parse_rule(text: str) -> tuple[int, int]:
    """'udp/5001' -> (17, 5001)."""
    m = re.match(r"^(tcp|udp)/([0-9]{1,5})$", text.strip().lower())
    if m is None or not 1 <= int(m.group(2)) <= 65535:
        raise ValueError(f"cannot read {text!r} as a rule (PROTO/PORT, e.g. udp/5001)")
    return PROTOS[m.group(1)], int(m.group(2))


def expected_fingerprint(seed: int, size: int) -> str:
    """The fingerprint a healthy sfcfwd started with `--seed seed --memory size` reports."""
    return hashlib.sha256(random.Random(seed).randbytes(min(FINGERPRINT_BYTES, size))).hexdigest()


def _ifreq(sock: socket.socket, request: int, ifname: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", ifname.encode()[:15]))


def checksum(header: bytes) -> int:
    """The IPv4 header checksum of `header` (its checksum field zeroed)."""
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def flow_key(frame: bytes) -> tuple[str, int, int, int] | None:
    """(flow name, protocol, source port, destination port) of an IPv4 frame; None if not."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
    sport = dport = 0
    if proto in (6, 17) and len(frame) >= 14 + ihl + 4:
        sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
    name = f"{NAMES.get(proto, str(proto))} {src}:{sport}>{dst}:{dport}"
    return name, proto, sport, dport


def forwarded_frame(frame: bytes, own_mac: bytes) -> bytes | None:
    """The frame as it leaves: our MAC as source, TTL one less (checksum updated); None if its
    TTL runs out."""
    ttl = frame[22]
    if ttl <= 1:
        return None
    ihl = (frame[14] & 0x0F) * 4
    header = bytearray(frame[14 : 14 + ihl])
    header[8] = ttl - 1
    header[10:12] = b"\0\0"
    header[10:12] = struct.pack("!H", checksum(bytes(header)))
    return frame[0:6] + own_mac + frame[12:14] + bytes(header) + frame[14 + ihl :]


class Forwarder:
    """The flow table, the packet socket and the control socket, in one poll loop."""

    def __init__(
        self,
        ifname: str,
        deny: Sequence[tuple[int, int]],
        memory: int,
        seed: int,
        control_port: int,
        max_flows: int,
    ) -> None:
        self.ifname = ifname
        self.deny = set(deny)
        self.max_flows = max_flows
        self.flows: dict[str, list[int]] = {}
        self.flows_over = 0
        self.forwarded = self.dropped = self.bytes = self.oversize = 0
        self.started = time.time()
        self.mem = mmap.mmap(-1, max(memory, mmap.PAGESIZE))
        fp = random.Random(seed).randbytes(min(FINGERPRINT_BYTES, len(self.mem)))
        self.mem[0 : len(fp)] = fp
        self.fp_len = len(fp)
        for off in range(len(fp), len(self.mem), mmap.PAGESIZE):  # resident, like a real table
            self.mem[off] = 1
        self.raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.raw.setblocking(False)
        self.own_mac = _ifreq(self.raw, SIOCGIFHWADDR, ifname)[18:24]
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.own_ip = _ifreq(probe, SIOCGIFADDR, ifname)[20:24]
        finally:
            probe.close()
        self.control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.control.bind(("0.0.0.0", control_port))
        self.control_port = int(self.control.getsockname()[1])
        self.control.setblocking(False)
        self.poller = select.poll()
        self.poller.register(self.raw.fileno(), select.POLLIN)
        self.poller.register(self.control.fileno(), select.POLLIN)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.mem[0 : self.fp_len]).hexdigest()

    def stats(self) -> dict[str, object]:
        return {
            "forwarded": self.forwarded,
            "dropped": self.dropped,
            "bytes": self.bytes,
            "oversize": self.oversize,
            "flows": self.flows,
            "flows_over": self.flows_over,
            "fingerprint": self.fingerprint(),
            "pid": os.getpid(),
            "started": self.started,
        }

    def handle(self, frame: bytes, pkttype: int) -> None:
        """One frame the packet socket saw."""
        if pkttype != PACKET_HOST or frame[0:6] != self.own_mac:
            return
        key = flow_key(frame)
        if key is None or frame[30:34] == self.own_ip:
            return  # not IPv4, or for us: the kernel answers it
        name, proto, sport, dport = key
        entry = self.flows.get(name)
        if entry is None:
            if len(self.flows) < self.max_flows:
                entry = self.flows[name] = [0, 0, 0]
            else:
                self.flows_over += 1
        denied = proto in (6, 17) and ((proto, sport) in self.deny or (proto, dport) in self.deny)
        if entry is not None:
            entry[0] += 1
            entry[1] += len(frame)
            entry[2] += denied
        if denied:
            self.dropped += 1
            return
        out = forwarded_frame(frame, self.own_mac)
        if out is None:
            self.dropped += 1
            return
        if len(out) > MAX_FRAME:
            self.oversize += 1
            return
        try:
            self.raw.sendto(out, (self.ifname, 0))
        except OSError:  # a full queue, or eth0 not there for an instant: TCP sends it again
            self.dropped += 1
            return
        self.forwarded += 1
        self.bytes += len(out)

    def answer(self) -> None:
        try:
            data, peer = self.control.recvfrom(512)
        except BlockingIOError:
            return
        if data.strip().upper() == b"STATS":
            reply = json.dumps(self.stats(), sort_keys=True).encode()
        else:
            reply = b'{"error": "unknown command (STATS)"}'
        with contextlib.suppress(OSError):  # the asker is gone: nothing to do
            self.control.sendto(reply, peer)

    def serve_forever(self) -> None:
        while True:
            for fd, _ in self.poller.poll(1000):
                if fd == self.control.fileno():
                    self.answer()
                    continue
                for _ in range(BURST):
                    try:
                        frame, addr = self.raw.recvfrom(65536)
                    except BlockingIOError:
                        break
                    self.handle(frame, addr[2])


def ask_stats(
    host: str, port: int = 9999, timeout: float = 2.0, tries: int = 3
) -> dict[str, object]:
    """A running sfcfwd's STATS (OSError if it does not answer in `tries` x `timeout`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for attempt in range(tries):
            s.sendto(b"STATS", (host, port))
            try:
                data: dict[str, object] = json.loads(s.recv(1 << 22))
                return data
            except TimeoutError:
                if attempt == tries - 1:
                    raise
    raise OSError(f"{host}:{port} does not answer")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--ask", metavar="HOST", help="print that forwarder's STATS and exit")
    p.add_argument("--interface", default="eth0", help="the link (default eth0)")
    p.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="PROTO/PORT",
        help="drop a flow with this port at either end, e.g. udp/5001 (repeatable)",
    )
    p.add_argument("--memory", default="16MiB", help="anonymous memory held (default 16MiB)")
    p.add_argument("--seed", type=int, default=42, help="fills the fingerprint region")
    p.add_argument(
        "--control-port", type=int, default=9999, help="UDP STATS (default 9999; 0: a free one)"
    )
    p.add_argument("--max-flows", type=int, default=10000, help="flows tracked (default 10000)")
    p.add_argument("--ready-file", default=None, help="written as '<pid> <port>' once up")
    args = p.parse_args(argv)
    if args.ask:
        try:
            print(json.dumps(ask_stats(args.ask, args.control_port), sort_keys=True))
        except OSError as exc:
            print(f"sfcfwd: {args.ask}: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        fwd = Forwarder(
            args.interface,
            [parse_rule(r) for r in args.deny],
            parse_size(args.memory),
            args.seed,
            args.control_port,
            args.max_flows,
        )
    except (ValueError, OSError) as exc:
        print(f"sfcfwd: {exc}", file=sys.stderr)
        return 2
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()} {fwd.control_port}\n")
        os.replace(tmp, args.ready_file)
    try:
        fwd.serve_forever()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
