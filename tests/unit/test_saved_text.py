"""controller.saved_text: the saved document is `to_dict()`'s compact sorted JSON, byte for
byte, however the state changed since the last save (records made, replaced, removed)."""

from __future__ import annotations

from controller.saved_text import SavedText, dumps
from controller.state import FabricState
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
