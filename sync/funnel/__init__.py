"""Funnel measurement, SLAs between teams, KPI planning and reports."""

from sync.funnel.build import build_report
from sync.funnel.business_time import Calendar
from sync.funnel.figures import FunnelReport
from sync.funnel.gauges import update_funnel_gauges
from sync.funnel.plan import Plan, PlanStep, plan_backwards
from sync.funnel.sla import Breach, BreachFeedback, SlaRule, detect_breaches, on_transition
from sync.funnel.stages import DETOURS, SUCCESS_PATH

__all__ = [
    "DETOURS",
    "SUCCESS_PATH",
    "Breach",
    "BreachFeedback",
    "Calendar",
    "FunnelReport",
    "Plan",
    "PlanStep",
    "SlaRule",
    "build_report",
    "detect_breaches",
    "on_transition",
    "plan_backwards",
    "update_funnel_gauges",
]
