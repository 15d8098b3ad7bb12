"""The application-mobility service's pure state (orchestration.ams, MEC021's shape) and how a
migration's record becomes its events (orchestration.ams_service.moves): registrations and
subscriptions with their bounds and refusals (nothing changes on a refusal), and the
notifications a migration of a registered application makes, filtered and in order."""

from __future__ import annotations

from typing import Any

import pytest

from migration.timeline import MigrationRecord, Outcome
from orchestration import ams
from orchestration.ams import (
    AmsFull,
    AmsState,
    AssociateId,
    Device,
    MobilityStatus,
    UnknownAms,
)
from orchestration.ams_service import AppMove, moves
from orchestration.chain_record import ChainRecord
from tests.unit.queue_world import queue_scenario

UE = AssociateId(1, "10.0.0.100")
UE2 = AssociateId(1, "10.0.0.101")
T, C, F = (
    MobilityStatus.INTERHOST_MOVEOUT_TRIGGERED,
    MobilityStatus.INTERHOST_MOVEOUT_COMPLETED,
    MobilityStatus.INTERHOST_MOVEOUT_FAILED,
)


def state() -> AmsState:
    """queue_scenario's applications (q0..q9, far, cfw, csrv, chain duo; no ports) and UEs ue1
    (10.0.0.100) and ue2, on a clock at 1700000000.25."""
    sc = queue_scenario()
    apps = ams.endpoints(sc)
    apps["web"] = ams.AppEndpoint("web", (("10.0.0.9", 80), ("10.0.0.9", 443)))
    return AmsState(apps, ["10.0.0.100", "10.0.0.101"], lambda: 1_700_000_000.25)


def url(kind: str) -> Any:
    return lambda i: f"http://ams/{kind}/{i}"


def snapshot(st: AmsState) -> tuple[Any, ...]:
    return dict(st.registrations), dict(st.subscriptions)


def test_registrations_are_made_replaced_and_deleted() -> None:
    st = state()
    a = st.register("q0", [Device(UE, 3, 0)], url("reg"), expiry_time=60)
    b = st.register("duo", [], url("reg"))
    assert (a.id, b.id) == ("1", "2") and a.resource_url == "http://ams/reg/1"
    assert a.devices[0].service_level == 3 and a.expiry_time == 60
    c = st.update("1", "q1", [Device(UE2)])
    assert (c.id, c.app, c.resource_url) == ("1", "q1", a.resource_url)
    assert st.registration("1") == c
    st.deregister("1")
    assert list(st.registrations) == ["2"]
    with pytest.raises(UnknownAms, match="'1'"):
        st.registration("1")
    assert st.register("q2", [], url("reg")).id == "3"  # ids are never given twice


@pytest.mark.parametrize(
    ("app", "devices", "error", "says"),
    [
        ("nope", [], UnknownAms, "no application instance 'nope'"),
        ("q0", [Device(AssociateId(1, "10.0.0.7"))], UnknownAms, "no UE with address"),
        ("q0", [Device(AssociateId(2, "::1"))], ValueError, "UE_IPv4_ADDRESS"),
        ("q0", [Device(UE)] * (ams.MAX_DEVICES + 1), ValueError, "at most 16"),
    ],
)
def test_a_refused_registration_changes_nothing(
    app: str, devices: list[Device], error: type[Exception], says: str
) -> None:
    st = state()
    st.register("q0", [Device(UE)], url("reg"))
    before = snapshot(st)
    with pytest.raises(error, match=says):
        st.register(app, devices, url("reg"))
    with pytest.raises(error, match=says):
        st.update("1", app, devices)
    assert snapshot(st) == before


def test_registrations_and_subscriptions_are_bounded() -> None:
    st = state()
    for _ in range(ams.MAX_REGISTRATIONS):
        st.register("q0", [], url("reg"))
    with pytest.raises(AmsFull, match="256 registrations"):
        st.register("q0", [], url("reg"))
    for _ in range(ams.MAX_SUBSCRIPTIONS):
        st.subscribe("http://x/", url("sub"))
    with pytest.raises(AmsFull, match="256 subscriptions"):
        st.subscribe("http://x/", url("sub"))
    st.unsubscribe("7")
    assert st.subscribe("http://x/", url("sub")).id == "257"


def test_a_subscription_defaults_to_triggered_only_and_refusals_change_nothing() -> None:
    st = state()
    sub = st.subscribe("http://x/", url("sub"), "q0", [UE, UE], [C, T, C])
    assert (sub.associate_ids, sub.statuses) == ((UE,), (C, T))
    assert st.subscribe("http://x/", url("sub")).statuses == (T,)  # MEC021's default
    before = snapshot(st)
    with pytest.raises(UnknownAms, match="'mars'"):
        st.subscribe("http://x/", url("sub"), "mars")
    with pytest.raises(UnknownAms, match="10.9.9.9"):
        st.subscribe("http://x/", url("sub"), None, [AssociateId(1, "10.9.9.9")])
    with pytest.raises(ValueError, match="at most 16"):
        st.subscribe("http://x/", url("sub"), None, [UE] * 17)
    with pytest.raises(UnknownAms, match="no subscription '9'"):
        st.unsubscribe("9")
    assert snapshot(st) == before


def test_a_migration_of_a_registered_application_notifies_its_subscribers_in_order() -> None:
    st = state()
    everything = st.subscribe("http://a/", url("sub"), statuses=[T, C, F])
    st.register("web", [Device(UE), Device(UE2)], url("reg"))
    notes = st.on_migration_event("start", "web", "mec1", "mec2")
    notes += st.on_migration_event("end", "web", "mec1", "mec2", ok=True)
    assert [n.body["mobilityStatus"] for n in notes] == [1, 2]
    assert {n.subscription_id for n in notes} == {everything.id}
    assert {n.notify_url for n in notes} == {"http://a/"}
    assert notes[0].body == {
        "notificationType": "MobilityProcedureNotification",
        "timeStamp": {"seconds": 1_700_000_000, "nanoSeconds": 250_000_000},
        "associateId": [{"type": 1, "value": "10.0.0.100"}, {"type": 1, "value": "10.0.0.101"}],
        "mobilityStatus": 1,
        "targetAppInfo": {
            "appInstanceId": "web",
            "commInterface": {
                "ipAddresses": [{"host": "10.0.0.9", "port": 80}, {"host": "10.0.0.9", "port": 443}]
            },
            "mecHostInformation": {"hostName": "mec2", "hostId": {"site": "mec2"}},
        },
        "_links": {"subscription": {"href": "http://ams/sub/1"}},
    }


def test_a_failed_migration_names_where_the_application_serves() -> None:
    st = state()
    st.subscribe("http://a/", url("sub"), statuses=[F])
    st.register("q0", [Device(UE)], url("reg"))
    assert st.on_migration_event("start", "q0", "mec1", "mec2") == []  # not subscribed to it
    rolled = st.on_migration_event("end", "q0", "mec1", "mec2", ok=False)
    past = st.on_migration_event("end", "q0", "mec1", "mec2", ok=False, serving_site="mec2")
    info = [n.body["targetAppInfo"] for n in rolled + past]
    assert [i["mecHostInformation"]["hostName"] for i in info] == ["mec1", "mec2"]  # type: ignore[index]
    assert [n.body["mobilityStatus"] for n in rolled + past] == [3, 3]
    # no port in the scenario: port 0
    assert info[0]["commInterface"] == {"ipAddresses": [{"host": "10.0.0.20", "port": 0}]}  # type: ignore[index]


def test_filters_pick_the_application_the_ues_and_the_statuses() -> None:
    st = state()
    st.register("q0", [Device(UE)], url("reg"))
    st.register("q0", [Device(UE2), Device(UE)], url("reg"))  # a second registration adds UE2
    st.register("q1", [Device(UE)], url("reg"))
    subs = {
        "any": st.subscribe("http://any/", url("sub"), statuses=[T, C, F]),
        "q1": st.subscribe("http://q1/", url("sub"), "q1", statuses=[T, C, F]),
        "ue2": st.subscribe("http://ue2/", url("sub"), None, [UE2], [T, C, F]),
        "default": st.subscribe("http://default/", url("sub")),
        "done": st.subscribe("http://done/", url("sub"), "q0", statuses=[C]),
    }
    start = st.on_migration_event("start", "q0", "mec1", "mec3")
    end = st.on_migration_event("end", "q0", "mec1", "mec3", ok=True)
    by_id = {s.id: k for k, s in subs.items()}
    assert [by_id[n.subscription_id] for n in start] == ["any", "ue2", "default"]
    assert [by_id[n.subscription_id] for n in end] == ["any", "ue2", "done"]
    ids = {by_id[n.subscription_id]: n.body["associateId"] for n in start}
    assert ids["any"] == [{"type": 1, "value": "10.0.0.100"}, {"type": 1, "value": "10.0.0.101"}]
    assert ids["ue2"] == [{"type": 1, "value": "10.0.0.101"}]  # only the UEs it asked for
    assert st.on_migration_event("start", "q2", "mec1", "mec3") == []  # nobody registered q2
    assert st.on_migration_event("start", "nope", "mec1", "mec3") == []
    st.deregister("3")
    assert st.on_migration_event("start", "q1", "mec1", "mec3") == []


def test_a_registration_without_devices_notifies_without_associate_ids() -> None:
    st = state()
    st.subscribe("http://a/", url("sub"))
    st.register("duo", [], url("reg"))
    (note,) = st.on_migration_event("start", "duo", "mec1", "mec2")
    assert "associateId" not in note.body
    addresses = note.body["targetAppInfo"]["commInterface"]["ipAddresses"]  # type: ignore[index]
    assert addresses == [{"host": "10.0.0.50", "port": 0}, {"host": "10.0.0.51", "port": 0}]


# ------------------------------------------------------------------ records -> events


def record(
    instance: str, outcome: Outcome = Outcome.RUNNING, past: bool = False
) -> MigrationRecord:
    rec = MigrationRecord(f"mig-{instance}", instance, "mec1", "mec2", "precopy", outcome=outcome)
    rec.point_of_no_return_ms = 5.0 if past else None
    return rec


def test_a_migration_record_is_one_application_s_move() -> None:
    assert moves("started", record("q0")) == [AppMove("start", "q0", "mec1", "mec2", None, "mec1")]
    assert moves("ended", record("q0", Outcome.DONE, past=True)) == [
        AppMove("end", "q0", "mec1", "mec2", True, "mec2")
    ]
    assert moves("ended", record("q0", Outcome.ROLLED_BACK))[0].ok is False
    assert moves("ended", record("q0", Outcome.FAILED, past=True))[0].serving == "mec2"
    assert moves("ended", record("q0", Outcome.RUNNING))[0].ok is False  # ended unfinished


def test_a_chain_record_moves_the_chain_then_each_function_with_the_chain_s_outcome() -> None:
    chain = ChainRecord(
        id="mig-duo",
        chain="duo",
        functions=["cfw", "csrv"],
        destination="mec3",
        pattern="wait-for-me",
        strategy="precopy",
        network_aware=False,
        outcome=Outcome.ROLLED_BACK,
        members={"cfw": record("cfw"), "csrv": record("csrv")},
    )
    assert moves("ended", chain) == [
        AppMove("end", "duo", "mec1", "mec3", False, "mec1"),
        AppMove("end", "cfw", "mec1", "mec3", False, "mec1"),
        AppMove("end", "csrv", "mec1", "mec3", False, "mec1"),
    ]
