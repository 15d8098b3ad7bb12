"""Orchestration, above the controller and the migration engine: the orchestrator, the links to
the controller, the clients of the site agents and the migration service behind /v1/migrations."""
