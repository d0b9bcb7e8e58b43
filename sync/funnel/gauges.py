"""Publish the latest funnel figures as Prometheus gauges (when the metrics module is present)."""

from __future__ import annotations

from sync.funnel.figures import FunnelReport
from sync.funnel.log import logger


def update_funnel_gauges(report: FunnelReport) -> bool:
    """Set ``funnel_stage_reached{stage}``, ``funnel_conversion_ratio{from_stage,to_stage}`` and
    ``sla_compliance_ratio{sla}`` from the report; False if the metrics are not available.
    """
    try:
        from sync.metrics import funnel_conversion_ratio, funnel_stage_reached, sla_compliance_ratio
    except ImportError:
        return False
    try:
        for s in report.stages:
            funnel_stage_reached.labels(stage=s.stage).set(s.reached)
        for c in report.conversion:
            if c.rate is not None and c.within_days is None:
                funnel_conversion_ratio.labels(from_stage=c.from_stage, to_stage=c.to_stage).set(c.rate)
        for summary in report.sla:
            if summary.compliance_rate is not None:
                sla_compliance_ratio.labels(sla=summary.sla_id).set(summary.compliance_rate)
    except Exception as exc:  # metrics must never break reporting
        logger().warning("funnel_gauges_failed", error=type(exc).__name__)
        return False
    return True
