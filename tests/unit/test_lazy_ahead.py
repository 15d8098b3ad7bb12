"""A post-copy's lazy-pages daemon starts with the destination's receive, before the freeze,
and the restore takes it (its start then costs the frozen window nothing): a restore for
another page server, a second receive and a destroy each end the one no restore took."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent import service as service_module
from agent.service import SiteService
from tests.unit.agent_fakes import fake_site, no_transfers
from tests.unit.migration_fakes import make_spec

SOURCE = "10.0.0.2:7101"


class Daemon:
    def __init__(self, page_server: str) -> None:
        self.page_server = page_server
        self.killed = False

    def alive(self) -> bool:
        return not self.killed

    def kill(self, group: bool = False) -> None:
        self.killed = True

    def wait(self, timeout: float | None = None) -> int:
        return 0


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SiteService, dict[str, Any]]:
    no_transfers(monkeypatch)
    seen: dict[str, Any] = {"started": [], "restored_with": []}

    def start_daemon(c: Any, name: str, page_server: str, spawner: Any, wait: bool) -> Daemon:
        assert wait  # it listens before the receive answers: its start-up is not the freeze's
        d = Daemon(page_server)
        seen["started"].append(d)
        return d

    def restore(c: Any, name: str, page_server: str, spawner: Any, daemon: Any = None) -> Any:
        seen["restored_with"].append(daemon)
        return daemon if daemon is not None else Daemon(page_server)

    monkeypatch.setattr(service_module, "start_lazy_daemon", start_daemon)
    monkeypatch.setattr(service_module, "start_lazy_restore", restore)
    service, _ = fake_site(tmp_path)
    service.create(make_spec("svc"))
    return service, seen


def test_the_restore_takes_the_daemon_started_with_the_receive(
    site: tuple[SiteService, dict[str, Any]],
) -> None:
    service, seen = site
    service.start_receive("svc", 7102, lazy_from=SOURCE)
    [ahead] = seen["started"]
    assert ahead.page_server == SOURCE and ahead.alive()
    service.restore("svc", lazy_from=SOURCE)
    assert seen["restored_with"] == [ahead] and ahead.alive()
    assert service.lazy_daemons["svc"] is ahead and not service.lazy_ahead


def test_a_restore_for_another_page_server_ends_the_daemon_started_ahead(
    site: tuple[SiteService, dict[str, Any]],
) -> None:
    service, seen = site
    service.start_receive("svc", lazy_from=SOURCE)
    service.restore("svc", lazy_from="10.0.0.3:7101")
    assert seen["started"][0].killed and seen["restored_with"] == [None]


def test_a_second_receive_and_a_destroy_end_the_daemon_no_restore_took(
    site: tuple[SiteService, dict[str, Any]],
) -> None:
    service, seen = site
    service.start_receive("svc", lazy_from=SOURCE)
    service.start_receive("svc", lazy_from=SOURCE)  # a migration that started again
    first, second = seen["started"]
    assert first.killed and not second.killed
    service.destroy("svc")  # the rollback's wipe of the destination
    assert second.killed and not service.lazy_ahead


def test_a_receive_without_lazy_from_starts_no_daemon(
    site: tuple[SiteService, dict[str, Any]],
) -> None:
    service, seen = site
    service.start_receive("svc", 7102)
    assert seen["started"] == [] and not service.lazy_ahead
