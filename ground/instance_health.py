"""When an instance counts as started: the bounds of its health settings (the scenario's
`health` command and `start_timeout`), shared by the scenario, the runtime spec and the
agent's API. The check itself is the agent's (agent.health)."""

from __future__ import annotations

DEFAULT_START_TIMEOUT_S = 30.0  # deploy waits this long for a service to be healthy
MAX_START_TIMEOUT_S = 600.0
MAX_HEALTH_ARGS = 64  # a health command's argv
HEALTH_COMMAND_TIMEOUT_S = 10.0  # one run of it
