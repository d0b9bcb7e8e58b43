"""Which connector plays which role: chosen by settings (``CLOSEDLOOP_MA``, ``CLOSEDLOOP_SFA``).

A connector is registered by name with its role, a function that opens its HTTP edge from settings
(once per process) and a function that binds that edge to the mapping in force.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync.config import Settings
from sync.connectors.contract import MA, SFA, MarketingConnector, Role, SalesConnector
from sync.mapping import Mapping

Opener = Callable[..., Any]  # (settings, policy, limit_storage, http_session) -> edge
Binder = Callable[[Any, Mapping], Any]  # (edge, mapping) -> role connector


@dataclass(frozen=True)
class Registration:
    name: str
    role: Role
    open: Opener
    bind: Binder


def _hubspot_ma() -> Registration:
    from sync.connectors.hubspot_ma import HubSpotMarketing, open_edge

    return Registration("hubspot", MA, open_edge, HubSpotMarketing)


def _marketo_ma() -> Registration:
    from sync.connectors.marketo_ma import MarketoMarketing, open_edge

    return Registration("marketo", MA, open_edge, MarketoMarketing)


def _salesforce_sfa() -> Registration:
    from sync.connectors.salesforce_sfa import SalesforceSales, open_edge

    return Registration("salesforce", SFA, open_edge, SalesforceSales)


def _hubspot_sfa() -> Registration:
    from sync.connectors.hubspot_sfa import bind, open_edge

    return Registration("hubspot", SFA, open_edge, bind)


# Objects whose webhook events belong to the SFA role when one connector plays both roles.
SFA_EVENT_OBJECTS: dict[str, tuple[str, ...]] = {"hubspot": ("deal",)}

REGISTRY: dict[tuple[Role, str], Callable[[], Registration]] = {
    (MA, "hubspot"): _hubspot_ma,
    (MA, "marketo"): _marketo_ma,
    (SFA, "salesforce"): _salesforce_sfa,
    (SFA, "hubspot"): _hubspot_sfa,
}


def available(role: Role) -> list[str]:
    """Connector names registered for a role."""
    return sorted(name for r, name in REGISTRY if r == role)


def registration(role: Role, name: str) -> Registration:
    """The registration of ``name`` in ``role``; a ValueError naming the choices otherwise."""
    factory = REGISTRY.get((role, name))
    if factory is None:
        raise ValueError(
            f"CLOSEDLOOP_{role.upper()}={name!r} is not a known {role.upper()} connector; "
            f"use one of: {', '.join(available(role))}"
        )
    return factory()


def chosen(settings: Settings) -> dict[Role, str]:
    """Role -> connector name, from settings."""
    return {MA: settings.ma, SFA: settings.sfa}


def role_of(settings: Settings, connector: str, object_type: str | None = None) -> str:
    """The role a connector plays under these settings ('' when it plays none).

    A connector in both roles (one HubSpot portal) receives events of both: its sales-side
    objects (deals) belong to the SFA role, everything else to the MA role.
    """
    roles = [role for role, name in chosen(settings).items() if name == connector]
    if len(roles) > 1:
        return SFA if object_type in SFA_EVENT_OBJECTS.get(connector, ()) else MA
    return roles[0] if roles else ""


@dataclass
class Edges:
    """The per-process HTTP edges of the chosen connectors (independent of the mapping)."""

    ma: Any
    sfa: Any

    def bind(self, settings: Settings, mapping: Mapping) -> tuple[MarketingConnector, SalesConnector]:
        """Role connectors for the mapping in force."""
        ma = registration(MA, settings.ma).bind(self.ma, mapping)
        sfa = registration(SFA, settings.sfa).bind(self.sfa, mapping)
        return ma, sfa


def open_edges(settings: Settings, policy: Any, limit_storage: Any, http_session: Any = None) -> Edges:
    """Open the chosen connectors' HTTP edges."""
    ma = registration(MA, settings.ma).open(settings, policy, limit_storage, http_session)
    sfa = registration(SFA, settings.sfa).open(settings, policy, limit_storage, http_session)
    return Edges(ma, sfa)
