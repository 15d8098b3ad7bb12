"""ARP frames: read a request, write a reply (the controller answers ARP itself: no floods)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_HEADER = struct.Struct("!6s6sH")
ARP_BODY = struct.Struct("!HHBBH6s4s6s4s")
ETH_TYPE_ARP = 0x0806
OP_REQUEST, OP_REPLY = 1, 2


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _raw_mac(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


@dataclass(frozen=True)
class Arp:
    """The fields of an Ethernet/IPv4 ARP frame that matter here."""

    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str
    eth_src: str


def parse_arp(frame: bytes) -> Arp | None:
    """The ARP in an Ethernet frame, or None if it is not an Ethernet/IPv4 ARP."""
    if len(frame) < ETH_HEADER.size + ARP_BODY.size:
        return None
    _, src, eth_type = ETH_HEADER.unpack_from(frame)
    if eth_type != ETH_TYPE_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = ARP_BODY.unpack_from(frame, ETH_HEADER.size)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    return Arp(
        op,
        _mac(sha),
        str(ipaddress.IPv4Address(spa)),
        _mac(tha),
        str(ipaddress.IPv4Address(tpa)),
        _mac(src),
    )


def arp_reply(request: Arp, answer_mac: str) -> bytes:
    """The reply to `request` saying that `request.target_ip` is at `answer_mac`."""
    eth = ETH_HEADER.pack(_raw_mac(request.sender_mac), _raw_mac(answer_mac), ETH_TYPE_ARP)
    body = ARP_BODY.pack(
        1,
        0x0800,
        6,
        4,
        OP_REPLY,
        _raw_mac(answer_mac),
        ipaddress.IPv4Address(request.target_ip).packed,
        _raw_mac(request.sender_mac),
        ipaddress.IPv4Address(request.sender_ip).packed,
    )
    return eth + body
