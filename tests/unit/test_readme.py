"""The README's settings reference names exactly the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from sync.config import Settings

README = Path(__file__).parents[2] / "README.md"


def test_readme_opens_with_the_two_setup_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    commands = [line.split("#")[0].strip() for line in lines[:8] if line.startswith("make ")]
    assert commands == ["make demo", "make test"]


def test_settings_reference_matches_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- settings-reference:start -->")[1].split("<!-- settings-reference:end -->")[0]
    documented = set(re.findall(r"`CLOSEDLOOP_([A-Z0-9_]+)`", block))
    in_code = {name.upper() for name in Settings.model_fields}
    assert documented == in_code, (sorted(in_code - documented), sorted(documented - in_code))
