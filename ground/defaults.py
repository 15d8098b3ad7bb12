"""Every default a user can change, in one place: the CLI, the REST models, the engine and the
benchmarks all read them from here (so they cannot disagree)."""

from __future__ import annotations

DOWNTIME_BUDGET_MS = 1000.0  # a migration's downtime budget (sizes reservations, stops pre-copy)
MIGRATION_RATE_BPS = 200_000_000  # reservation asked for a migration's copy rounds
DEFAULT_STRATEGY = "precopy"
HOLD_MODE = "auto"  # hold the instance's traffic while it is frozen: auto | always | never

RESERVED_DSCP = 46  # EF: reserved traffic, marked at its first switch, first out of shaped links

MIGRATION_PORT = 7100  # agents receive migration traffic here; reservations match it
PAGE_SERVER_PORT = 7101  # a post-copy source serves its memory pages here
AGENT_PORT = 7070  # an agent's HTTP API when it listens on TCP
REST_HOST = "127.0.0.1"  # the controller's REST API
REST_PORT = 8080
OPENFLOW_PORT = 6653
CONTROLLER_URL = f"http://{REST_HOST}:{REST_PORT}"
