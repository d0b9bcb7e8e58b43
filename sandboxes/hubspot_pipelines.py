"""Deal pipelines of the HubSpot sandbox (https://developers.hubspot.com/docs/api/crm/pipelines).

Every portal starts with the "Sales Pipeline" (id ``default``) and its seven stages; more pipelines
can be created. Stage ``metadata`` carries ``isClosed`` and ``probability`` as strings, the way
the v3 pipelines API returns them; whether a stage means won or lost follows from that metadata
(closed with probability 1.0 is won, closed with 0.0 is lost), never from its label.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandboxes.hubspot_errors import HubSpotError
from sandboxes.hubspot_props import iso_ms

DEFAULT_PIPELINE_ID = "default"
# (stage id, label, probability, closed) of the default "Sales Pipeline"
# (https://knowledge.hubspot.com/object-settings/set-up-and-customize-pipelines, "Deal pipelines").
DEFAULT_STAGES: tuple[tuple[str, str, float, bool], ...] = (
    ("appointmentscheduled", "Appointment Scheduled", 0.2, False),
    ("qualifiedtobuy", "Qualified To Buy", 0.4, False),
    ("presentationscheduled", "Presentation Scheduled", 0.6, False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8, False),
    ("contractsent", "Contract Sent", 0.9, False),
    ("closedwon", "Closed Won", 1.0, True),
    ("closedlost", "Closed Lost", 0.0, True),
)
MAX_STAGES = 100


@dataclass
class Stage:
    id: str
    label: str
    display_order: int
    probability: float
    is_closed: bool
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "displayOrder": self.display_order,
            "metadata": {"isClosed": str(self.is_closed).lower(), "probability": str(self.probability)},
            "createdAt": iso_ms(self.created_at),
            "updatedAt": iso_ms(self.updated_at),
            "archived": False,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        }


@dataclass
class Pipeline:
    id: str
    label: str
    display_order: int
    created_at: datetime
    updated_at: datetime
    stages: list[Stage] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "displayOrder": self.display_order,
            "stages": [s.to_json() for s in sorted(self.stages, key=lambda s: s.display_order)],
            "createdAt": iso_ms(self.created_at),
            "updatedAt": iso_ms(self.updated_at),
            "archived": False,
        }


class Pipelines:
    """The portal's deal pipelines."""

    def __init__(self, now: datetime) -> None:
        default = Pipeline(DEFAULT_PIPELINE_ID, "Sales Pipeline", 0, now, now)
        default.stages = [
            Stage(sid, label, i, prob, closed, now, now)
            for i, (sid, label, prob, closed) in enumerate(DEFAULT_STAGES)
        ]
        self.pipelines: dict[str, Pipeline] = {default.id: default}
        self._ids = itertools.count(75_000_001)  # new pipelines and stages get numeric ids

    def default_id(self) -> str:
        return min(self.pipelines.values(), key=lambda p: (p.display_order, p.label)).id

    def get(self, pipeline_id: str) -> Pipeline | None:
        return self.pipelines.get(pipeline_id)

    def stage_of(self, pipeline_id: str, stage_id: str) -> Stage | None:
        pipeline = self.pipelines.get(pipeline_id)
        if pipeline is None:
            return None
        return next((s for s in pipeline.stages if s.id == stage_id), None)

    def all_stages(self) -> list[tuple[Pipeline, Stage]]:
        return [(p, s) for p in self.ordered() for s in sorted(p.stages, key=lambda s: s.display_order)]

    def ordered(self) -> list[Pipeline]:
        return sorted(self.pipelines.values(), key=lambda p: (p.display_order, p.label))

    def create(self, body: dict[str, Any], now: datetime) -> Pipeline:
        """A new pipeline from a v3 ``PipelineInput`` body; stages need a deal probability."""
        label = body.get("label")
        if not isinstance(label, str) or not label.strip():
            raise HubSpotError(400, "Invalid input: a pipeline needs a label")
        if any(p.label == label for p in self.pipelines.values()):
            raise HubSpotError(409, f"A pipeline with label {label} already exists", "CONFLICT")
        raw_stages = body.get("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise HubSpotError(400, "Invalid input: a pipeline needs at least one stage")
        if len(raw_stages) > MAX_STAGES:
            raise HubSpotError(400, f"A pipeline can have at most {MAX_STAGES} stages")
        pipeline = Pipeline(
            str(next(self._ids)), label, _int(body.get("displayOrder", 0), "displayOrder"), now, now
        )
        labels: set[str] = set()
        for i, raw in enumerate(raw_stages):
            stage = self._stage(raw, i, now)
            if stage.label in labels:
                raise HubSpotError(400, f"Stage labels must be unique within a pipeline: {stage.label}")
            labels.add(stage.label)
            pipeline.stages.append(stage)
        self.pipelines[pipeline.id] = pipeline
        return pipeline

    def _stage(self, raw: Any, index: int, now: datetime) -> Stage:
        if not isinstance(raw, dict) or not isinstance(raw.get("label"), str) or not raw["label"].strip():
            raise HubSpotError(400, f"Invalid input: stage {index} needs a label")
        metadata = raw.get("metadata")
        if not isinstance(metadata, dict) or "probability" not in metadata:
            # Deal stages must say how likely a deal in them is to close.
            raise HubSpotError(
                400, f"Invalid input: deal stage '{raw['label']}' needs metadata.probability (0.0 to 1.0)"
            )
        try:
            probability = float(metadata["probability"])
        except (TypeError, ValueError) as exc:
            raise HubSpotError(400, "metadata.probability must be a number from 0.0 to 1.0") from exc
        if not 0.0 <= probability <= 1.0 or round(probability * 10) != probability * 10:
            raise HubSpotError(400, "metadata.probability must be between 0.0 and 1.0 in steps of 0.1")
        closed = str(metadata.get("isClosed", "false")).lower() == "true"
        return Stage(
            str(next(self._ids)),
            raw["label"],
            _int(raw.get("displayOrder", index), "displayOrder"),
            probability,
            closed,
            now,
            now,
        )


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise HubSpotError(400, f"Invalid input: {name} must be an integer") from exc
