"""The README stays true: every setting is documented, and it opens with the two commands."""

from __future__ import annotations

from pathlib import Path

from clarion.config import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [n for n in Settings.model_fields if f"`CLARION_{n.upper()}`" not in README]
    assert missing == [], f"document these settings in the README: {missing}"


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make run" in head and "make test" in head
