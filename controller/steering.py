"""SFC steering: force a chain's traffic through every function, in order, both ways.

A chain UE -> F1 -> ... -> Fk (Fk serves). Every function keeps one interface, its own IP and MAC,
and forwards IP like a router (ip_forward on, redirects off). The controller steers by rewriting
the destination MAC where a packet leaves each hop: a frame from the UE to Fk's IP, recognised by
its source MAC, gets F1's MAC; when F1 sends it on (source MAC now F1's) it gets F2's; and so on.
Replies from Fk to the UE go back through F(k-1) ... F1. Because the rules match on the hop's MAC
at the hop's switch, they move with an instance when it is relocated, and they survive a reinstall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.ofmsg import (
    ETH_TYPE_IP,
    IP_PROTO,
    PRIO_CHAIN,
    TABLE_CLASSIFY,
    TABLE_FORWARD,
    CookieKind,
    FlowMod,
    Match,
    SetField,
    cookie,
)
from topology.model import Attachment


class ChainError(ValueError):
    """A chain that cannot be steered (a member without IP/MAC or not attached)."""


@dataclass(frozen=True)
class Chain:
    """What steering needs of a chain: members in order (UE first, server last) and traffic."""

    name: str
    members: tuple[str, ...]
    proto: str = "any"
    port: int | None = None


def _l4(proto: str, port: int | None, *, to_server: bool) -> dict[str, int | None]:
    if proto == "any":
        return {}
    fields: dict[str, int | None] = {"ip_proto": IP_PROTO[proto]}
    if port is not None and proto in ("tcp", "udp"):
        fields[f"{proto}_{'dst' if to_server else 'src'}"] = port
    return fields


def chain_flows(
    chain: Chain, hosts: Mapping[str, Attachment], chain_id: int
) -> list[tuple[str, FlowMod]]:
    """(switch name, flow) pairs that steer `chain` given where its members are attached."""
    members: Sequence[Attachment] = []
    for name in chain.members:
        att = hosts.get(name)
        if att is None or att.ip is None or att.mac is None:
            raise ChainError(f"chain {chain.name}: member {name!r} is not attached with IP and MAC")
        members = [*members, att]
    ue, server = members[0], members[-1]
    mark = cookie(CookieKind.CHAIN, chain_id)
    flows: list[tuple[str, FlowMod]] = []

    def steer(
        hop: Attachment, nxt: Attachment, src: Attachment, dst: Attachment, fwd: bool
    ) -> None:
        match = Match.of(
            eth_src=hop.mac,
            eth_type=ETH_TYPE_IP,
            ipv4_src=src.ip,
            ipv4_dst=dst.ip,
            **_l4(chain.proto, chain.port, to_server=fwd),
        )
        flows.append(
            (
                hop.switch,
                FlowMod(
                    "add",
                    table=TABLE_CLASSIFY,
                    priority=PRIO_CHAIN,
                    match=match,
                    actions=(SetField("eth_dst", nxt.mac or ""),),
                    goto=TABLE_FORWARD,
                    cookie=mark,
                ),
            )
        )

    for hop, nxt in zip(members, members[1:], strict=False):
        steer(hop, nxt, ue, server, fwd=True)
    back = list(reversed(members))
    for hop, nxt in zip(back, back[1:], strict=False):
        steer(hop, nxt, server, ue, fwd=False)
    return flows
