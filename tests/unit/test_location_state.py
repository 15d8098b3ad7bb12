"""The location service's pure state (controller.location, controller.location_events): the
users where the scenario puts them, which MEC013 events a handover makes and for whom, in which
order, with which fields, and the bounds on subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.location import (
    MAX_SUBSCRIPTIONS,
    LocationState,
    TooManySubscriptions,
    UnknownLocation,
)
from controller.location_events import Move, Notification, UserEvent, timestamp, zone_events
from topology.mobility_events import Handover
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
CITY = load_scenario(ROOT / "scenarios" / "city.yaml")
THREE_SITES = load_scenario(ROOT / "scenarios" / "three-sites.yaml")
CAR = "acr:10.0.0.100"
E, L, T = UserEvent.ENTERING, UserEvent.LEAVING, UserEvent.TRANSFERRING


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.25

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def state() -> LocationState:
    return LocationState.from_scenario(CITY, Clock())


def url(kind: str) -> Callable[[str], str]:
    return lambda sid: f"http://mec/location/v2/subscriptions/{kind}/{sid}"


def zonal(st: LocationState, zone: str, *criteria: UserEvent, data: str | None = None) -> str:
    sub = st.subscribe(
        "zonalTraffic", zone, "http://app/z", url("zonalTraffic"), data, None, criteria
    )
    return sub.id


def tracking(st: LocationState, address: str, *criteria: UserEvent) -> str:
    sub = st.subscribe(
        "userTracking", address, "http://app/u", url("userTracking"), None, "corr", criteria
    )
    return sub.id


def body(note: Notification) -> dict[str, Any]:
    inner: dict[str, Any] = note.body["zonalPresenceNotification"]  # type: ignore[assignment]
    return inner


def brief(notes: list[Notification]) -> list[tuple[str, str, str, str, str | None]]:
    out = []
    for n in notes:
        b = body(n)
        out.append(
            (n.subscription_id, b["userEventType"], b["zoneId"], b["currentAccessPointId"],
             b.get("previousAccessPointId"))
        )  # fmt: skip
    return out


# ------------------------------------------------------------------------------ from the scenario


def test_zones_access_points_and_users_come_from_the_scenario() -> None:
    st = state()
    assert {z.id: (z.site, z.access_points) for z in st.zones.values()} == {
        "zone01": ("mec1", ("poa5g01", "poa5g02", "poa5g03")),
        "zone02": ("mec2", ("poa5g04", "poa5g05", "wifi01", "poa4g01")),
        "zone03": ("mec3", ("poa5g06", "poa5g07")),
    }
    car, walker, bus = st.users.values()
    assert (car.address, car.access_point, car.zone, car.position) == (
        CAR, "poa5g01", "zone01", (0.0, 0.0),
    )  # fmt: skip
    assert (walker.address, walker.access_point, walker.position) == (
        "acr:10.0.0.101", "poa5g01", (20.0, 60.0),
    )  # fmt: skip
    # the bus's trace starts out of every range: on no access point, left out of the lists
    assert (bus.access_point, bus.zone) == (None, None)
    assert [u.ue for u in st.located()] == ["car", "walker"]
    assert st.users_in(zone_id="zone01") == 2 and st.users_in(ap="poa5g02") == 0


def test_a_scenario_without_a_map_has_no_zones_and_its_users_are_nowhere() -> None:
    st = LocationState.from_scenario(THREE_SITES, Clock())
    assert st.zones == {} and st.located() == []
    with pytest.raises(UnknownLocation, match="no zone 'zone01'.*no map"):
        st.zone("zone01")
    with pytest.raises(UnknownLocation, match="no access point 'poa5g01'.*no map"):
        st.announce(THREE_SITES.ues[0].name, "poa5g01")


def test_users_are_filtered_as_mec013_says() -> None:
    st = state()
    st.announce("car", "poa5g04")
    assert [u.ue for u in st.find_users(zone_ids=["zone01", "zone02"])] == ["car", "walker"]
    assert [u.ue for u in st.find_users(zone_ids=["zone02"])] == ["car"]
    assert [u.ue for u in st.find_users(aps=["poa5g01"], addresses=[CAR])] == []
    assert [u.ue for u in st.find_users(aps=["poa5g04"], addresses=[CAR])] == ["car"]
    assert st.find_users(zone_ids=["zone09"]) == []


# ------------------------------------------------------------------------------ events


def move(
    old_ap: str | None, new_ap: str | None, old_zone: str | None, new_zone: str | None
) -> Move:
    return Move("car", CAR, old_ap, new_ap, old_zone, new_zone, 0.0)


def test_the_events_of_each_kind_of_change() -> None:
    def ev(m: Move) -> list[tuple[UserEvent, str, str, str | None]]:
        return [(e.event, e.zone, e.current_ap, e.previous_ap) for e in zone_events(m)]

    assert ev(move("a1", "a2", "z1", "z1")) == [(T, "z1", "a2", "a1")]
    assert ev(move("a1", "b1", "z1", "z2")) == [(L, "z1", "a1", None), (E, "z2", "b1", "a1")]
    assert ev(move("a1", None, "z1", None)) == [(L, "z1", "a1", None)]
    assert ev(move(None, "b1", None, "z2")) == [(E, "z2", "b1", None)]
    assert ev(move("a1", "a1", "z1", "z1")) == []
    assert ev(move(None, None, None, None)) == []


def test_zonal_subscriptions_get_their_zone_s_events_and_user_tracking_its_user_s() -> None:
    st = state()
    z1, z2 = zonal(st, "zone01"), zonal(st, "zone02")
    u = tracking(st, CAR)
    other = tracking(st, "acr:10.0.0.101")
    _, notes = st.announce("car", "poa5g02")  # within zone01
    assert brief(notes) == [
        (z1, T, "zone01", "poa5g02", "poa5g01"),
        (u, T, "zone01", "poa5g02", "poa5g01"),
    ]
    _, notes = st.announce("car", "poa5g04")  # zone01 -> zone02: LEAVING first
    assert brief(notes) == [
        (z1, L, "zone01", "poa5g02", None),
        (z2, E, "zone02", "poa5g04", "poa5g02"),
        (u, L, "zone01", "poa5g02", None),
        (u, E, "zone02", "poa5g04", "poa5g02"),
    ]
    _, notes = st.announce("car", None)  # out of every range
    assert brief(notes) == [(z2, L, "zone02", "poa5g04", None), (u, L, "zone02", "poa5g04", None)]
    _, notes = st.announce("car", None)
    assert notes == []
    assert all(n.subscription_id != other for n in notes)
    _, notes = st.announce("walker", "poa5g03")
    assert brief(notes) == [
        (z1, T, "zone01", "poa5g03", "poa5g01"),
        (other, T, "zone01", "poa5g03", "poa5g01"),
    ]


def test_user_event_criteria_filter_and_the_body_has_mec013_s_fields() -> None:
    clock = Clock()
    st = LocationState.from_scenario(CITY, clock)
    entering = zonal(st, "zone02", E, data="cb-7")
    leaving = tracking(st, CAR, L, L)  # duplicates count once
    assert st.subscription("userTracking", leaving).criteria == (L,)
    _, notes = st.announce("car", "poa5g04")
    assert [n.subscription_id for n in notes] == [entering, leaving]
    assert notes[0].notify_url == "http://app/z" and notes[0].kind == "zonalTraffic"
    assert notes[0].body == {
        "zonalPresenceNotification": {
            "zoneId": "zone02",
            "address": CAR,
            "callbackData": "cb-7",
            "userEventType": "ENTERING_EVENT",
            "currentAccessPointId": "poa5g04",
            "previousAccessPointId": "poa5g01",
            "timestamp": timestamp(clock.now),
            "link": [
                {
                    "rel": "zonalTraffic",
                    "href": "http://mec/location/v2/subscriptions/zonalTraffic/1",
                }
            ],
        }
    }
    assert "callbackData" not in body(notes[1])
    _, notes = st.announce("car", "poa5g05")  # TRANSFERRING: wanted by neither
    assert notes == []


def test_timestamps_come_from_the_injected_clock() -> None:
    assert timestamp(1_700_000_000.25) == {"seconds": 1_700_000_000, "nanoSeconds": 250_000_000}
    clock = Clock()
    st = LocationState.from_scenario(CITY, clock)
    st.announce("car", "poa5g02")
    assert st.user("car").timestamp == clock.now


def test_a_handover_moves_from_where_the_state_says_not_where_the_handover_says() -> None:
    st = state()
    u = tracking(st, CAR)
    st.announce("car", "poa5g05")
    h = Handover(1.0, "car", "poa5g01", "poa5g02", "zone01", "zone01", "mec1", "mec1", 140.0, 0.0)
    change, notes = st.apply(h)
    assert (change.old_ap, change.new_ap) == ("poa5g05", "poa5g02")
    assert brief(notes) == [
        (u, L, "zone02", "poa5g05", None),
        (u, E, "zone01", "poa5g02", "poa5g05"),
    ]
    assert st.user("car").position == (140.0, 0.0)


# ------------------------------------------------------------------------------ subscriptions


def test_subscriptions_are_bounded_and_unknown_names_are_refused() -> None:
    st = state()
    with pytest.raises(UnknownLocation, match="no zone 'zone09'"):
        zonal(st, "zone09")
    with pytest.raises(UnknownLocation, match="no user 'acr:10.0.0.9'"):
        tracking(st, "acr:10.0.0.9")
    with pytest.raises(UnknownLocation, match="no UE 'nobody'"):
        st.announce("nobody", "poa5g01")
    with pytest.raises(UnknownLocation, match="no access point 'poa9'"):
        st.announce("car", "poa9")
    ids = [zonal(st, "zone01") for _ in range(MAX_SUBSCRIPTIONS)]
    assert ids == [str(i) for i in range(1, MAX_SUBSCRIPTIONS + 1)]
    with pytest.raises(TooManySubscriptions, match="256"):
        tracking(st, CAR)
    st.unsubscribe("zonalTraffic", "7")
    assert tracking(st, CAR) == str(MAX_SUBSCRIPTIONS + 1)  # ids are never reused
    with pytest.raises(UnknownLocation):
        st.subscription("zonalTraffic", "7")
    with pytest.raises(UnknownLocation, match="no userTracking subscription '1'"):
        st.unsubscribe("userTracking", "1")  # a zonal one
    assert len(st.of_kind("zonalTraffic")) == MAX_SUBSCRIPTIONS - 1
    assert [s.id for s in st.of_kind("userTracking")] == [str(MAX_SUBSCRIPTIONS + 1)]


def test_a_refused_announcement_changes_nothing() -> None:
    st = state()
    before = dict(st.users)
    with pytest.raises(UnknownLocation):
        st.announce("car", "poa9")
    assert st.users == before
