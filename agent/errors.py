"""What a site can answer besides success: `SiteError`s with the site in the message, each with
the HTTP status the agent's API gives it, so that the in-process `SiteService` and the remote
`AgentClient` raise the same exceptions for the same refusal."""

from __future__ import annotations

from migration.site import SiteError, SiteRefused


class SiteRequestError(SiteError):
    """A site refused or failed a step; `status` is the HTTP status the agent answers with."""

    status = 500


class UnknownInstance(SiteRequestError):
    """The site holds no instance of that name (404)."""

    status = 404


class BadRequest(SiteRequestError):
    """A request that can never succeed as asked: a malformed instance name, a bad round (400)."""

    status = 400


class Conflict(SiteRequestError, SiteRefused):
    """A step that the site's present state forbids (409)."""

    status = 409


class NotPending(Conflict):
    """A step that finishes another, when that other is not in progress here (409)."""


class InUse(Conflict):
    """A target asked for where the instance runs, or where another migration's target waits
    (409): replacing it would destroy a service or a migration in flight."""


class Unauthorized(SiteRequestError):
    """The agent wants its token (`X-Mecmig-Token`), and the request had none or a wrong one."""

    status = 401


class StepFailed(SiteRequestError):
    """runc, CRIU, the network plumbing or a transfer failed (500); their message is in it."""

    status = 500


BY_STATUS: dict[int, type[SiteRequestError]] = {
    cls.status: cls for cls in (UnknownInstance, BadRequest, Conflict, Unauthorized)
}


def error_for_status(status: int, message: str) -> SiteRequestError:
    """The exception an agent's HTTP error status stands for (StepFailed for any other)."""
    return BY_STATUS.get(status, StepFailed)(message)
