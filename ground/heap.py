"""The garbage collector and a long-lived process's large, lasting state.

A controller builds its model once (at 1,000 sites ~170,000 objects, with the software switches
of `mecmig bench scale`) and then changes little of it per request. Python's collector still
walks every one of those objects in each older-generation pass: a gen-1 pass took ~1.5 ms and a
full one ~130 ms, at random requests. `settle()` moves what exists into the permanent generation
(`gc.freeze`), so later passes look only at what was made after it; it is still freed by
reference counting when dropped.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect once, then keep every object that survived out of later passes. Returns how
    many objects were set aside (call once the long-lived state is built)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
