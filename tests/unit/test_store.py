"""controller.store: the saved document is whole whenever the controller stops, and found."""

from __future__ import annotations

import json
from pathlib import Path

from controller.store import StateStore


def test_the_store_writes_into_a_directory_it_makes_and_replaces_the_file_whole(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "not" / "yet" / "state.json")
    assert store.load() is None
    store.save_text('{"a":1}')
    assert store.load() == {"a": 1}
    store.save({"b": 2})
    assert store.load() == {"b": 2}
    assert sorted(p.name for p in (tmp_path / "not" / "yet").iterdir()) == ["state.json"]


def test_cut_short_while_writing_the_new_document_the_old_one_is_loaded(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save({"v": 1})
    (tmp_path / "state.json.tmp").write_text('{"v": 2, "hal')  # the new one, half-written
    assert store.load() == {"v": 1}
    store.save({"v": 3})  # the next save writes over what was left
    assert store.load() == {"v": 3}
    assert not (tmp_path / "state.json.tmp").exists()


def test_cut_short_between_removing_the_old_and_renaming_the_new_the_new_one_is_loaded(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save({"v": 1})
    (tmp_path / "state.json").unlink()
    (tmp_path / "state.json.tmp").write_text(json.dumps({"v": 2}))  # whole: written first
    assert store.load() == {"v": 2}
    # put in place, so that the next save's new copy is never the only one
    assert (tmp_path / "state.json").exists() and not (tmp_path / "state.json.tmp").exists()
    assert store.load() == {"v": 2}


def test_no_path_keeps_nothing(tmp_path: Path) -> None:
    store = StateStore(None)
    store.save({"v": 1})
    assert store.load() is None
