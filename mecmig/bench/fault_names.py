"""The names of `mecmig bench reliability`'s faults and phase boundaries, importable without the
emulation (the CLI's parser lists them; `mecmig.bench.faults` defines them)."""

from __future__ import annotations

# phase boundaries: the engine's phase at whose start a fault fires ("after": the point of no
# return, once the destination serves)
PHASES: dict[str, str | None] = {
    "prepare": "prepare",
    "precopy": "precopy-1",
    "freeze": "freeze_dump",
    "transfer": "transfer",
    "switch": "switch",
    "restore": "restore",
    "after": None,
}
FAULT_NAMES = (
    "kill-source-agent",
    "kill-destination-agent",
    "kill-criu-dump",
    "kill-criu-restore",
    "cut-link",
    "fill-disk",
    "restart-controller",
    "disconnect-switch",
    "second-migration",
)
