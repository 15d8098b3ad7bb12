"""The scenario's sites as the orchestration reaches them: one `Site` client per site agent."""

from __future__ import annotations

from ground.paths import agent_socket
from orchestration.agent_client import AgentClient
from topology.scenario import Scenario


def site_clients(sc: Scenario) -> dict[str, AgentClient]:
    """One client per site, on the agents' default Unix sockets."""
    return {
        s.name: AgentClient(s.name, str(s.agent_ip), uds=str(agent_socket(sc.name, s.name)))
        for s in sc.sites
    }
