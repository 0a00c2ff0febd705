"""docs/configuration.md is what `clubstack settings --markdown` prints: never stale."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from clubstack.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_current() -> None:
    result = CliRunner().invoke(main, ["settings", "--markdown"])
    assert result.exit_code == 0, result.output
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == result.output, (
        "docs/configuration.md is stale: run `make docs` (clubstack settings --markdown)"
    )


def test_configuration_doc_lists_every_core_setting() -> None:
    from clubstack.settings import Settings

    text = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`CLUBSTACK_{name.upper()}`" in text, name


def test_readme_and_operations_guide_point_at_each_other() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "docs/configuration.md" in readme and "docs/operations.md" in readme
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "clubstack db upgrade" in operations
    for path in ("deploy/nginx/clubstack.conf", "deploy/compose.yaml", "deploy/gunicorn.conf.py"):
        assert (ROOT / path).is_file(), path
        assert path in operations, path
