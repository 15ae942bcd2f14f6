"""The JSON Schema of campaign files: the copy in the repository is the one the model makes, the example
campaigns point their editors at it and pass it, and it refuses what `validate` refuses in shape."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from outreach.campaigns.json_schema import campaign_json_schema, schema_text
from tests.workdir import OUTREACH

ROOT = Path(__file__).resolve().parents[2]
IN_REPO = ROOT / "docs" / "campaign.schema.json"
EXAMPLES = sorted((ROOT / "campaigns").glob("*.yaml"))


def _load(path: Path) -> dict[str, object]:
    """The file as plain JSON-like data (dates as text, as an editor's YAML server sees them)."""
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def test_the_copy_in_the_repository_is_the_generated_schema() -> None:
    assert IN_REPO.read_text(encoding="utf-8") == schema_text(), (
        "the campaign model changed: run `outreach campaigns schema --output docs/campaign.schema.json`"
    )
    printed = subprocess.run([OUTREACH, "campaigns", "schema"], capture_output=True, text=True, check=True).stdout
    assert json.loads(printed) == campaign_json_schema()
    jsonschema.Draft202012Validator.check_schema(campaign_json_schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_campaign_names_the_schema_and_passes_it(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (path.parent / first.split("$schema=", 1)[1]).resolve() == IN_REPO
    jsonschema.validate(_load(path), campaign_json_schema())


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"colour": "red"}, "Additional properties are not allowed"),
        ({"purpose": "sales"}, "is not one of"),
        ({"steps": []}, "should be non-empty"),
        ({"frequency_cap": {"max": 2, "per": "a week"}}, "does not match"),
    ],
)
def test_the_schema_refuses_what_validate_refuses(change: dict[str, object], complaint: str) -> None:
    campaign = _load(ROOT / "campaigns" / "nps-survey.yaml") | change
    with pytest.raises(jsonschema.ValidationError, match=complaint):
        jsonschema.validate(campaign, campaign_json_schema())
