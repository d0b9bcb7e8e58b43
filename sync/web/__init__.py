"""The web process: HubSpot webhooks, Salesforce outbound messages, health, readiness and metrics."""

from sync.web.app import create_app

__all__ = ["create_app"]
