"""The controller's Python client with `/v1/migrations` (served by the orchestration layer that
`mecmig controller` mounts into the controller's REST API)."""

from __future__ import annotations

from typing import Any

from controller.client import ControllerClient, parse_response
from orchestration.api_models import MigrationView


class MigrationClient(ControllerClient):
    """`ControllerClient` plus the migrations API."""

    def migrate(
        self,
        instance: str,
        to: str,
        *,
        strategy: str | None = None,
        budget_ms: float | None = None,
        rate: int | str | None = None,
        hold: str | None = None,
    ) -> MigrationView:
        """Start a live migration through the controller (it returns at once: poll
        `migration(id)` until its outcome is no longer "running"); unset fields take the
        server's defaults."""
        body: dict[str, Any] = {"instance": instance, "to": to}
        for key, value in (
            ("strategy", strategy),
            ("budget_ms", budget_ms),
            ("rate", rate),
            ("hold", hold),
        ):
            if value is not None:
                body[key] = value
        return parse_response(self._request("POST", "/migrations", body), MigrationView)

    def migration(self, mid: str) -> MigrationView:
        """A migration's record so far."""
        return parse_response(self._request("GET", f"/migrations/{mid}"), MigrationView)

    def migrations(self) -> list[MigrationView]:
        """Every migration started through this controller."""
        return self._get("/migrations", list[MigrationView])
