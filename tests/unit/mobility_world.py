"""Small maps and paths for the mobility tests."""

from __future__ import annotations

from topology.mobility_map import RadioMap
from topology.mobility_spec import MapSpec

# (name, zone, x, y, range_m); zone zN is served by site mecN
Cells = list[tuple[str, str, float, float, float]]


def radio(cells: Cells) -> RadioMap:
    zones = sorted({c[1] for c in cells})
    return RadioMap.from_spec(
        MapSpec.model_validate(
            {
                "zones": [{"name": z, "site": f"mec{z[1:]}"} for z in zones],
                "cells": [
                    {"name": n, "zone": z, "position": [x, y], "range_m": r}
                    for n, z, x, y, r in cells
                ],
            }
        )
    )
