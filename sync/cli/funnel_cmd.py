"""``closedloop funnel report|plan``."""

from __future__ import annotations
