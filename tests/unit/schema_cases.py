"""What the schemathesis tests of our HTTP APIs share: the checks every answer must pass, and
the bounds that keep a run short and the same every time (derandomized, no shrinking, no
example database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

# documented status, body, headers and content type; invalid data refused; 405 with `Allow`
CONFORMANCE = [
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    negative_data_rejection,
    unsupported_method,
    allow_header_conformance,
]
CHECKS = [not_a_server_error, *CONFORMANCE]


def bounded(max_examples: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Hypothesis settings for a schema test: at most `max_examples` generated cases per
    operation after the document's examples, no deadline, the same cases every run."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
