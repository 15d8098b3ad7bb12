"""The chain function's packet handling: which frames it forwards, how it rewrites them, how it
counts and filters per flow (the socket part runs live in test_chain_live.py)."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from workloads import sfcfwd

OWN_MAC = bytes.fromhex("020000000031")
OTHER_MAC = bytes.fromhex("020000000064")
OWN_IP = socket.inet_aton("10.0.0.31")


def ip_frame(src: str, dst: str, proto: int, sport: int, dport: int, ttl: int = 64,
             dst_mac: bytes = OWN_MAC, payload: bytes = b"x" * 20) -> bytes:  # fmt: skip
    l4 = struct.pack("!HH", sport, dport) + payload
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, ttl, proto, 0,
                                   socket.inet_aton(src), socket.inet_aton(dst)))  # fmt: skip
    header[10:12] = struct.pack("!H", sfcfwd.checksum(bytes(header)))
    return dst_mac + OTHER_MAC + b"\x08\x00" + bytes(header) + l4


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent.append((data, addr))
        return len(data)


def forwarder(deny: list[tuple[int, int]] | None = None, max_flows: int = 10) -> Any:
    fwd = object.__new__(sfcfwd.Forwarder)
    fwd.ifname, fwd.deny, fwd.max_flows = "eth0", set(deny or ()), max_flows
    fwd.flows, fwd.flows_over = {}, 0
    fwd.forwarded = fwd.dropped = fwd.bytes = fwd.oversize = 0
    fwd.own_mac, fwd.own_ip, fwd.raw = OWN_MAC, OWN_IP, FakeSocket()  # type: ignore[assignment]
    return fwd


def test_checksum_of_a_valid_header_verifies_to_zero() -> None:
    frame = ip_frame("10.0.0.100", "10.0.0.40", 6, 40000, 8080)
    assert sfcfwd.checksum(frame[14:34]) == 0


def test_forwarded_frame_leaves_from_our_mac_with_ttl_one_less_and_a_valid_checksum() -> None:
    frame = ip_frame("10.0.0.100", "10.0.0.40", 6, 40000, 8080, ttl=64)
    out = sfcfwd.forwarded_frame(frame, OWN_MAC)
    assert out is not None
    assert out[6:12] == OWN_MAC and out[0:6] == frame[0:6]
    assert out[22] == 63
    assert sfcfwd.checksum(out[14:34]) == 0
    assert out[34:] == frame[34:]  # the payload is untouched
    assert sfcfwd.forwarded_frame(ip_frame("1.1.1.1", "2.2.2.2", 6, 1, 2, ttl=1), OWN_MAC) is None


def test_a_chain_frame_is_counted_per_flow_and_sent_on_eth0() -> None:
    fwd = forwarder()
    frame = ip_frame("10.0.0.100", "10.0.0.40", 6, 40000, 8080)
    for _ in range(3):
        fwd.handle(frame, sfcfwd.PACKET_HOST)
    assert fwd.flows == {"tcp 10.0.0.100:40000>10.0.0.40:8080": [3, 3 * len(frame), 0]}
    assert fwd.forwarded == 3 and fwd.bytes == 3 * len(frame)
    assert [addr for _, addr in fwd.raw.sent] == [("eth0", 0)] * 3


@pytest.mark.parametrize(
    "frame,pkttype",
    [
        (ip_frame("10.0.0.100", "10.0.0.31", 6, 40000, 9999), sfcfwd.PACKET_HOST),  # for us
        (ip_frame("10.0.0.100", "10.0.0.40", 6, 40000, 8080), 4),  # our own outgoing copy
        (ip_frame("10.0.0.100", "10.0.0.40", 6, 1, 2, dst_mac=OTHER_MAC), 3),  # someone else's
        (OWN_MAC + OTHER_MAC + b"\x08\x06" + b"\0" * 28, sfcfwd.PACKET_HOST),  # ARP
    ],
)
def test_what_is_not_a_chain_frame_is_left_alone(frame: bytes, pkttype: int) -> None:
    fwd = forwarder()
    fwd.handle(frame, pkttype)
    assert fwd.flows == {} and fwd.raw.sent == [] and fwd.forwarded == fwd.dropped == 0


def test_a_denied_flow_is_dropped_at_either_port_and_counted() -> None:
    fwd = forwarder(deny=[sfcfwd.parse_rule("udp/5001")])
    fwd.handle(ip_frame("10.0.0.100", "10.0.0.40", 17, 33000, 5001), sfcfwd.PACKET_HOST)
    fwd.handle(ip_frame("10.0.0.40", "10.0.0.100", 17, 5001, 33000), sfcfwd.PACKET_HOST)
    fwd.handle(ip_frame("10.0.0.100", "10.0.0.40", 6, 33000, 5001), sfcfwd.PACKET_HOST)  # tcp
    assert fwd.dropped == 2 and fwd.forwarded == 1
    assert fwd.flows["udp 10.0.0.100:33000>10.0.0.40:5001"][2] == 1
    assert fwd.flows["tcp 10.0.0.100:33000>10.0.0.40:5001"][2] == 0


def test_the_flow_table_is_bounded() -> None:
    fwd = forwarder(max_flows=2)
    for port in range(5):
        fwd.handle(ip_frame("10.0.0.100", "10.0.0.40", 6, 40000 + port, 80), sfcfwd.PACKET_HOST)
    assert len(fwd.flows) == 2 and fwd.flows_over == 3 and fwd.forwarded == 5


@pytest.mark.parametrize("bad", ["udp", "sctp/1", "udp/0", "udp/70000", "tcp/x"])
def test_bad_rules_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        sfcfwd.parse_rule(bad)
