"""The text the controller saves after every change: `FabricState.to_dict()` as compact JSON
with sorted keys, made without re-encoding what did not change.

At 1,000 sites the document holds 1,200 hosts' places; building their dicts and encoding them
again on every reservation took ~4 ms of a ~8 ms REST call (`mecmig bench scale`). Hosts,
standbys and reservations are immutable records, replaced (never changed) when they change, so
the text of each is kept for as long as the record itself is in the state: a save encodes only
the records made since the last one, and joins the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import compress
from operator import is_not
from typing import Any

from controller.state import FabricState, attachment_dict, record_dict

SEPARATORS = (",", ":")


def dumps(value: Any) -> str:
    """The one encoding of the saved document (json's C encoder: no indent)."""
    return json.dumps(value, sort_keys=True, separators=SEPARATORS)


class _Items:
    """The JSON list of some immutable records, each record's text kept while it is listed."""

    def __init__(self, to_dict: Any) -> None:
        self._to_dict = to_dict
        self._texts: dict[int, tuple[object, str]] = {}  # id -> (the record, its text)
        # the records of the last list, their texts in its order, and the list
        self._last: tuple[tuple[object, ...], list[str], str] = ((), [], "[]")

    def text(self, items: Iterable[object]) -> str:
        records = tuple(items)
        last, last_parts, last_text = self._last
        # the same records as last time (a tuple compares identical items without asking
        # them): the same text, without a look at each (1,200 hosts' places at 1,000 sites)
        if records == last:
            return last_text
        if len(records) == len(last):  # some replaced in place: find them in C, not one by one
            changed = list(compress(range(len(records)), map(is_not, records, last)))
            if len(changed) <= len(records) // 8:
                texts, parts = self._texts, list(last_parts)
                for i in changed:
                    texts.pop(id(last[i]), None)
                    parts[i] = self._encoded(records[i], texts)
                return self._keep(records, parts)
        texts = {}
        return self._keep(records, [self._encoded(item, texts) for item in records], texts)

    def _encoded(self, item: object, into: dict[int, tuple[object, str]]) -> str:
        """The text of `item`, kept in `into` (the texts of the records listed now only)."""
        kept = self._texts.get(id(item))
        if kept is None or kept[0] is not item:  # holding the record keeps its id unique
            kept = (item, dumps(self._to_dict(item)))
        into[id(item)] = kept
        return kept[1]

    def _keep(
        self,
        records: tuple[object, ...],
        parts: list[str],
        texts: dict[int, tuple[object, str]] | None = None,
    ) -> str:
        if texts is not None:
            self._texts = texts
        text = "[" + ",".join(parts) + "]"
        self._last = (records, parts, text)
        return text


class SavedText:
    """`text(state)` == `dumps(state.to_dict())`, for one state over its life."""

    def __init__(self) -> None:
        self._reservations = _Items(record_dict)
        self._hosts = _Items(attachment_dict)
        self._standbys = _Items(attachment_dict)
        self._host_ids: tuple[dict[str, int], str] = ({}, "{}")

    def text(self, state: FabricState) -> str:
        ids, ids_text = self._host_ids
        if ids != state.host_ids:
            ids = dict(state.host_ids)
            ids_text = dumps(ids)
            self._host_ids = (ids, ids_text)
        standbys = (a for places in state.standbys.values() for a in places.values())
        # the keys in sorted order, as `dumps` writes them
        return (
            '{"host_ids":' + ids_text
            + ',"hosts":' + self._hosts.text(state.hosts.values())
            + ',"next_reservation":' + dumps(state.next_reservation)
            + ',"reservations":' + self._reservations.text(state.reservations.values())
            + ',"scenario":' + dumps(state.scenario.name)
            + ',"standbys":' + self._standbys.text(standbys)
            + ',"version":' + dumps(state.SAVED_VERSION)
            + "}"
        )  # fmt: skip
