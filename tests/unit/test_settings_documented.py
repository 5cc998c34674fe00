"""Every environment variable the functions read is in the README's configuration table, with its default."""

from pathlib import Path

import pytest
from pydantic_core import PydanticUndefined

from hubspot_destination.settings import DeliverSettings, IngestSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def _rows() -> list[str]:
    text = README.read_text()
    table = text[text.index("## Configuration") : text.index("Metrics (namespace")]
    return [line for line in table.splitlines() if line.startswith(("| ingest", "| deliver", "| both"))]


def _shown(default: object) -> str:
    return str(default).lower() if isinstance(default, bool) else str(default).removesuffix(".0").rstrip("/")


@pytest.mark.parametrize(
    ("function", "field"),
    [("ingest", f) for f in IngestSettings.model_fields.values()]
    + [("deliver", f) for f in DeliverSettings.model_fields.values()],
    ids=lambda value: getattr(value, "alias", value),
)
def test_variable_is_documented_with_its_default(function, field):
    rows = [row for row in _rows() if f"`{field.alias}`" in row]
    assert rows, f"{field.alias} is not in the README's configuration table"
    assert any(row.split("|")[1].strip() in (function, "both") for row in rows), f"{field.alias}: not for {function}"
    if field.default not in (PydanticUndefined, None):
        assert any(_shown(field.default) in row for row in rows), f"{field.alias}: default {field.default} not shown"
