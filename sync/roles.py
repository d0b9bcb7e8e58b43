"""The two roles a connected system plays: marketing automation (MA) and sales CRM (SFA)."""

from __future__ import annotations

from typing import Literal

Role = Literal["ma", "sfa"]
MA: Role = "ma"
SFA: Role = "sfa"
ROLES: tuple[Role, ...] = (MA, SFA)
