"""controller.saved_text: the saved document is `to_dict()`'s compact sorted JSON, byte for
byte, however the state changed since the last save (records made, replaced, removed)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.saved_text import SavedText, dumps
from controller.state import FabricState
from mecmig.bench.scale_fabric import scenario
from tests.unit.controller_helpers import M, make_state


def _same(saved: SavedText, state: FabricState) -> None:
    assert saved.text(state) == dumps(state.to_dict())


def test_the_text_is_to_dicts_json_after_every_kind_of_change() -> None:
    state, saved = make_state(), SavedText()
    _same(saved, state)
    first, _ = state.reserve("ue1", "video", 10 * M)
    _same(saved, state)
    second, _ = state.reserve("ue1", "fw", 5 * M, dst_port=8080)
    _same(saved, state)
    state.resize(first.id, 20 * M)  # a record replaced
    _same(saved, state)
    state.relocate("video", "mec3")  # a host's place replaced
    _same(saved, state)
    state.add_standby("video", "mec2")
    _same(saved, state)
    state.promote("video", "mec2")  # standbys and places both
    _same(saved, state)
    state.release(second.id)  # a record gone
    _same(saved, state)
    state.learn_host("02:00:0a:00:00:77", "10.0.0.77", "s3", 9)  # a host and an id made
    _same(saved, state)


def test_an_unchanged_state_is_not_encoded_again() -> None:
    state, saved = make_state(), SavedText()
    state.reserve("ue1", "video", 10 * M)
    text = saved.text(state)
    kept = dict(saved._hosts._texts)
    assert saved.text(state) == text
    # the same text objects: nothing was encoded again
    assert all(saved._hosts._texts[k][1] is v[1] for k, v in kept.items())


def test_a_list_of_the_same_records_is_not_looked_through_again() -> None:
    state, saved = make_state(), SavedText()
    text = saved.text(state)
    saved._hosts._texts.clear()  # were each record looked at, each would be encoded again
    assert saved.text(state) == text
    assert saved._hosts._texts == {}
    state.relocate("video", "mec3")
    _same(saved, state)


CHANGES = st.tuples(
    st.sampled_from(["move", "reserve", "resize", "release"]), st.integers(0, 10**6)
)


@settings(max_examples=25, deadline=None)
@given(st.lists(CHANGES, max_size=12))
def test_the_text_is_to_dicts_json_over_a_run_of_changes_at_a_hundred_sites(
    changes: list[tuple[str, int]],
) -> None:
    """Most saves change one place of many (a relocation: only that text is made again), or
    the reservations' list: each is the whole document's JSON all the same."""
    state, saved = FabricState(scenario(100)), SavedText()
    _same(saved, state)
    for kind, n in changes:
        rids = sorted(state.reservations)
        if kind == "move":
            state.relocate(f"app{n % 10 + 1}", f"mec{n % 100 + 1}")
        elif kind == "reserve":  # from a site to another
            a, b = n % 100, (n % 100 + 1 + (n // 100) % 99) % 100
            state.reserve(f"mec{a + 1}", f"mec{b + 1}", M, dst_port=n % 60000 + 1)
        elif rids and kind == "resize":
            state.resize(rids[n % len(rids)], (n % 5 + 1) * M)
        elif rids:
            state.release(rids[n % len(rids)])
        _same(saved, state)
