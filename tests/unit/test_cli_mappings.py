"""`closedloop mappings lint|schema|preview` as an admin uses them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML
from typer.testing import CliRunner

from workers.cli import app

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def test_lint_default_mapping_is_clean() -> None:
    result = runner.invoke(app, ["mappings", "lint", str(ROOT / "mappings")])
    assert result.exit_code == 0, result.output


def test_lint_reports_every_error_with_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "mappings" / "default.yaml").read_text()
    text = text.replace("handover: {at: mql, create_as: Lead}", "handover: {at: mqll, create_as: Lead}")
    text = text.replace("sync: ma_to_sfa, sfa_objects", "sync: ma_too_sfa, sfa_objects")
    bad.write_text(text)
    result = runner.invoke(app, ["mappings", "lint", str(bad)])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(bad))]
    assert len(lines) == 2, result.stdout
    handover_line = next(i for i, line in enumerate(text.splitlines(), 1) if "mqll" in line)
    assert any(line.startswith(f"{bad}:{handover_line}:") and "mql" in line for line in lines), lines


def test_lint_refuses_a_directory_the_service_would_refuse(tmp_path: Path) -> None:
    from sync.mapping import MappingError, load_mapping

    empty = tmp_path / "empty"
    empty.mkdir()
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.yaml", "b.yaml"):
        (two / name).write_text((ROOT / "mappings" / "default.yaml").read_text())
    for folder in (empty, two):
        try:
            load_mapping(folder)
        except MappingError:
            pass
        else:  # pragma: no cover - the premise: the service cannot start on this folder
            raise AssertionError(f"the service would load {folder}")
        result = runner.invoke(app, ["mappings", "lint", str(folder)])
        assert result.exit_code == 1, result.output
        assert result.stdout.startswith(f"{folder}:1:1: "), result.stdout
        assert "mapping files and no default.yaml" in result.stdout or "no mapping file" in result.stdout


def test_schema_validates_the_default_mapping() -> None:
    result = runner.invoke(app, ["mappings", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    document = YAML(typ="safe").load((ROOT / "mappings" / "default.yaml").read_text())
    jsonschema.validate(document, schema)
    document["fields"][0]["sync"] = "sideways"
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError:
        pass
    else:  # pragma: no cover - the assertion message is the point
        raise AssertionError("schema accepted an unknown sync direction")


def test_preview_shows_stage_and_writes_without_writing(tmp_path: Path) -> None:
    record = tmp_path / "contact.json"
    record.write_text(
        json.dumps(
            {
                "properties": {
                    "email": " Ann.O'Brien@Example.com ",
                    "hubspotscore": "72",
                    "company": "  Macy's  ",
                    "lastname": None,
                }
            }
        )
    )
    result = runner.invoke(app, ["mappings", "preview", "--from", "hubspot", str(record)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["stage"] == "mql"
    assert shown["writes"]["Email"] == "ann.o'brien@example.com"
    assert shown["writes"]["Company"] == "Macy's"
    assert shown["writes"]["LastName"] == "[not provided]"


def test_preview_rejects_unknown_source(tmp_path: Path) -> None:
    record = tmp_path / "r.json"
    record.write_text("{}")
    result = runner.invoke(app, ["mappings", "preview", "--from", "pardot", str(record)])
    assert result.exit_code != 0
    assert "hubspot, marketo, salesforce" in result.output


MARKETO_MAPPING = Path(__file__).parents[2] / "mappings" / "marketo-salesforce.yaml"


def test_preview_from_a_marketo_lead(tmp_path: Path) -> None:
    record = tmp_path / "lead.json"
    lead = {
        "id": 1001,
        "email": " Taro@Example.JP ",
        "lastName": "山田",
        "leadScore": 72,
        "leadSource": "Website",
    }
    record.write_text(json.dumps({"success": True, "result": [lead]}), encoding="utf-8")
    args = ["mappings", "preview", "--from", "marketo", "--mapping", str(MARKETO_MAPPING), str(record)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["stage"], shown["target"], shown["object"]) == ("mql", "salesforce", "Lead")
    assert shown["writes"]["Email"] == "taro@example.jp" and shown["writes"]["LeadSource"] == "Web"
    assert shown["writes"]["LastName"] == "山田"


def test_preview_of_an_opportunity_writes_back_to_the_marketo_lead(tmp_path: Path) -> None:
    record = tmp_path / "opp.json"
    opp = {"attributes": {"type": "Opportunity"}, "IsClosed": True, "IsWon": False, "Loss_Reason__c": "Price"}
    record.write_text(json.dumps(opp), encoding="utf-8")
    args = ["mappings", "preview", "--from", "salesforce", "--mapping", str(MARKETO_MAPPING), str(record)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["stage"], shown["target"]) == ("lost", "marketo")
    assert shown["writes"]["closedloop_loss_reason"] == "Price"
