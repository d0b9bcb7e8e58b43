"""The Dockerfile passes hadolint; the compose file describes a working reference deployment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ruamel.yaml import YAML

from workers.cli import app

ROOT = Path(__file__).parents[2]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_essentials() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2, "multi-stage build expected"
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and not user[-1].startswith(("0", "root")), "must run as non-root"
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["closedloop"]' in text


def _command_names() -> set[str]:
    names = set()
    for info in app.registered_commands:
        names.add(info.name or (info.callback.__name__ if info.callback else ""))
    for group in app.registered_groups:
        names.add(group.name or "")
    return names


def test_compose_reference_deployment() -> None:
    compose = YAML(typ="safe").load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "web", "worker", "beat", "migrate"} <= set(services)
    known = _command_names()
    for name in ("web", "worker", "beat", "migrate"):
        service = services[name]
        command = service["command"]
        assert command[0] in known, f"{name}: unknown closedloop command {command[0]}"
        env = service["environment"]
        assert env["CLOSEDLOOP_DATABASE_URL"].startswith("postgresql")
        assert env["CLOSEDLOOP_REDIS_URL"].startswith("redis://")
        assert "redis" in service["depends_on"] and "postgres" in service["depends_on"]
    assert services["worker"].get("stop_grace_period"), "workers need time for a warm shutdown"
