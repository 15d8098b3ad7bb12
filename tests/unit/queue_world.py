"""A world for the migration queue's tests: a real northbound facade and fabric state over a
generated scenario (three MEC sites around a core switch, 100 Mbit/s links; ten instances at
mec1, one at mec3, a 2-function chain at mec1) and in-memory sites, with the queue's clock and
thread starter in the test's hands (`run_next` runs one started migration to its end)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.facade import Northbound
from controller.runtime import Runtime
from controller.state import FabricState
from controller.store import StateStore
from orchestration.links import FacadeLink
from orchestration.migration_queue import MigrationQueue
from orchestration.service import MigrationService
from tests.unit.migration_fakes import MB, FakeClock, FakeSite, connect, join_migration_threads
from topology.scenario import Scenario, parse_scenario

CAPACITY_BPS = 100_000_000
SINGLES = tuple(f"q{i}" for i in range(10))
CHAIN = ("cfw", "csrv")


def queue_scenario() -> Scenario:
    instances: list[dict[str, Any]] = [
        {
            "name": name,
            "site": "mec1",
            "command": "/usr/bin/python3 /data/memhog.py --size 8MiB --port 7000",
            "memory": "8MiB",
            "ip": f"10.0.0.{20 + i}",
        }
        for i, name in enumerate(SINGLES)
    ]
    instances.append(
        {
            "name": "far",
            "site": "mec3",
            "command": "/usr/bin/python3 /data/memhog.py --size 8MiB --port 7000",
            "memory": "8MiB",
            "ip": "10.0.0.40",
        }
    )
    for i, name in enumerate(CHAIN):
        instances.append(
            {
                "name": name,
                "site": "mec1",
                "command": "/usr/bin/python3 /data/memhog.py --size 8MiB --port 7000",
                "memory": "8MiB",
                "ip": f"10.0.0.{50 + i}",
            }
        )
    return parse_scenario(
        {
            "name": "queue",
            "network": {"subnet": "10.0.0.0/24"},
            "sites": [{"name": "mec1"}, {"name": "mec2"}, {"name": "mec3"}],
            "switches": [{"name": "core", "dpid": 100}],
            "links": [
                {"between": [site, "core"], "capacity": "100Mbit"}
                for site in ("mec1", "mec2", "mec3")
            ],
            "instances": instances,
            "chains": [{"name": "duo", "ue": "ue1", "functions": list(CHAIN)}],
            "ues": [{"name": "ue1", "attach": "mec3", "ip": "10.0.0.100"}],
        }
    )


class ProbedSite(FakeSite):
    """A fake site that calls `probe` during every copy (a reservation is in force then)."""

    probe: Callable[[], None] | None = None

    def send(self, *args: Any, **kw: Any) -> Any:
        if self.probe is not None:
            self.probe()
        return super().send(*args, **kw)


class QueueWorld:
    def __init__(self, policy: str = "network-aware") -> None:
        self.scenario = queue_scenario()
        self.runtime = Runtime(FabricState(self.scenario), StateStore(None))
        self.nb = Northbound(self.runtime)
        clock = FakeClock()
        self.sites = {
            name: ProbedSite(name, f"192.168.0.{i}", clock, send_bytes=(8 * MB,))
            for i, name in enumerate(("mec1", "mec2", "mec3"), start=1)
        }
        connect(*self.sites.values())
        self.service = MigrationService(self.scenario, FacadeLink(self.nb), self.sites)
        for inst in self.scenario.instances:
            self.service.orch.deploy(inst.name)
        self.now = 0.0
        self.pending: list[tuple[str, Callable[[], None]]] = []
        self.queue = MigrationQueue(
            self.service.orch,
            policy,
            clock=lambda: self.now,
            start_thread=lambda fn, name: self.pending.append((name, fn)),
            claims=self.service,
            outside_poll_s=None,  # the outside is read at submissions and ends only
        )
        self.link_loads: list[dict[tuple[str, str], int]] = []
        for site in self.sites.values():
            site.probe = self.check_links

    def reserved_per_link(self) -> dict[tuple[str, str], int]:
        load: dict[tuple[str, str], int] = {}
        for r in self.nb.reservations():
            for link in zip(r.path, r.path[1:], strict=False):
                load[link] = load.get(link, 0) + r.rate_bps
        return load

    def granted_per_link(self) -> dict[tuple[str, str], int]:
        load: dict[tuple[str, str], int] = {}
        for job in self.queue.state().running:
            entry = self.queue.entry(job.id)
            assert entry is not None
            for link in entry.resolved.links:
                load[link] = load.get(link, 0) + (job.rate_bps or 0)
        return load

    def check_links(self) -> None:
        """No link is over-committed: by the controller's reservations nor by the grants."""
        reserved = self.reserved_per_link()
        self.link_loads.append(reserved)
        for load in (reserved, self.granted_per_link()):
            for link, rate in load.items():
                assert rate <= CAPACITY_BPS, f"{link} over-committed: {rate}"

    def run_next(self, seconds: float = 1.0) -> str:
        """Let `seconds` pass on the queue's clock, then run the first started migration."""
        self.now += seconds
        name, fn = self.pending.pop(0)
        fn()
        self.check_links()
        return name.removeprefix("queue-")

    def where(self, instance: str) -> list[str]:
        return [
            n
            for n, s in self.sites.items()
            if s.instances.get(instance) is not None and s.instances[instance].status == "running"
        ]

    def shutdown(self) -> None:
        join_migration_threads()
        self.runtime.shutdown()
