"""The scenario's sites as the orchestration reaches them: one `Site` client per site agent.

Where each site's agent answers, first match wins: an endpoint given for it (`mecmig migrate
--agent SITE=URL`), the scenario's `agent:` for the site, the local Unix socket
(`ground.paths.agent_socket`). An endpoint is `unix:/path/to.sock` or `http://HOST:PORT`; an
agent on a non-loopback TCP address wants the shared token (`agent.token`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ground.paths import agent_socket
from orchestration.agent_client import DEFAULT_TIMEOUT_S, AgentClient
from topology.scenario import Scenario, SiteSpec

NO_ENDPOINTS: Mapping[str, str] = MappingProxyType({})


class EndpointError(ValueError):
    """An agent endpoint given for a site that cannot be used (which one, and why)."""


def parse_agent_flags(flags: Iterable[str], sc: Scenario) -> dict[str, str]:
    """`["mec1=http://10.0.0.1:7070", ...]` -> {site: endpoint}, each checked and normalised."""
    endpoints: dict[str, str] = {}
    for flag in flags:
        site, sep, endpoint = flag.partition("=")
        if not sep or not site or not endpoint:
            raise EndpointError(
                f"--agent {flag!r}: expected SITE=URL, e.g. mec1=http://10.0.0.1:7070"
            )
        if site in endpoints:
            raise EndpointError(f"--agent: site {site} given twice")
        endpoints[site] = endpoint
    return checked_endpoints(endpoints, sc)


def checked_endpoints(endpoints: Mapping[str, str], sc: Scenario) -> dict[str, str]:
    """The endpoints, normalised; EndpointError for an unknown site or a malformed URL."""
    known = [s.name for s in sc.sites]
    out: dict[str, str] = {}
    for site, endpoint in endpoints.items():
        if site not in known:
            raise EndpointError(
                f"agent endpoint for {site!r}: no such site in scenario {sc.name} "
                f"(sites: {', '.join(known)})"
            )
        try:
            out[site] = SiteSpec.agent_endpoint(endpoint)
        except ValueError as exc:
            raise EndpointError(f"agent endpoint for site {site}: {exc}") from exc
    return out


def agent_endpoint(sc: Scenario, site: str, endpoints: Mapping[str, str] = NO_ENDPOINTS) -> str:
    """Where `site`'s agent answers (see the module docstring)."""
    given = endpoints.get(site) or sc.site(site).agent
    return given or f"unix:{agent_socket(sc.name, site)}"


def site_clients(
    sc: Scenario,
    endpoints: Mapping[str, str] = NO_ENDPOINTS,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> dict[str, AgentClient]:
    """One client per site, at its agent's endpoint, sending `token` if given; a request that
    gets no answer within `timeout` seconds finds its agent unreachable."""
    chosen = checked_endpoints(endpoints, sc)
    return {
        s.name: AgentClient.at(
            s.name,
            str(s.agent_ip),
            agent_endpoint(sc, s.name, chosen),
            token=token,
            timeout=timeout,
        )
        for s in sc.sites
    }
