"""Typed errors raised by the topology model, path computation and admission control."""

from __future__ import annotations

from typing import Any

from ground.units import fmt_bps


class TopologyError(Exception):
    """Base class of every error raised by the ``topology`` package."""


class DuplicateError(TopologyError):
    """Something that must be unique (name, dpid, link, port) was declared twice."""


class UnknownNodeError(TopologyError):
    """A switch, site or host name (or a dpid) does not exist in the topology."""

    def __init__(self, name: str, kind: str = "node") -> None:
        self.name = name
        self.kind = kind
        super().__init__(f"unknown {kind} {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Custom __init__ signatures break default exception pickling; keep errors picklable.
        return (self.__class__, (self.name, self.kind))


class UnknownLinkError(TopologyError):
    """Two switches are not joined by a link (or the link is down)."""

    def __init__(self, u: str, v: str) -> None:
        self.u = u
        self.v = v
        super().__init__(f"no link between {u!r} and {v!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.u, self.v))


class NoPathError(TopologyError):
    """No path connects ``src`` to ``dst`` (under the given exclusions)."""

    def __init__(self, src: str, dst: str, reason: str = "") -> None:
        self.src = src
        self.dst = dst
        self.reason = reason
        suffix = f" ({reason})" if reason else ""
        super().__init__(f"no path from {src} to {dst}{suffix}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.src, self.dst, self.reason))


class AdmissionError(TopologyError):
    """A rate cannot be reserved from ``src`` to ``dst``.

    ``bottleneck`` is the directed link ``(u, v)`` that limits the best path the network
    could offer, with its ``residual_bps`` (clamped at 0), ``capacity_bps`` and
    ``reserved_bps``. ``bottleneck`` is ``None`` when no path exists at all.
    """

    def __init__(
        self,
        src: str,
        dst: str,
        rate_bps: int,
        bottleneck: tuple[str, str] | None,
        residual_bps: int,
        capacity_bps: int = 0,
        reserved_bps: int = 0,
        detail: str = "",
    ) -> None:
        self.src = src
        self.dst = dst
        self.rate_bps = rate_bps
        self.bottleneck = bottleneck
        self.residual_bps = residual_bps
        self.capacity_bps = capacity_bps
        self.reserved_bps = reserved_bps
        self.detail = detail
        head = f"cannot admit {fmt_bps(rate_bps)} from {src} to {dst}"
        if bottleneck is None:
            msg = f"{head}: no path between them"
        else:
            u, v = bottleneck
            msg = (
                f"{head}: bottleneck link {u}->{v} has {fmt_bps(residual_bps)} residual "
                f"(capacity {fmt_bps(capacity_bps)}, reserved {fmt_bps(reserved_bps)})"
            )
        if detail:
            msg = f"{msg} [{detail}]"
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        args = (
            self.src,
            self.dst,
            self.rate_bps,
            self.bottleneck,
            self.residual_bps,
            self.capacity_bps,
            self.reserved_bps,
            self.detail,
        )
        return (self.__class__, args)
