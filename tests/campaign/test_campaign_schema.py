"""The published JSON Schema of campaign files: current, accepted by every example, refusing what the check
refuses at the shape level, and optional exactly where the protocol fills a key in."""

from __future__ import annotations

import json
import pathlib
import re

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from aiida_perovskite.campaign.schema import campaign_schema
from aiida_perovskite.campaign.spec import CampaignError, parse_campaign
from aiida_perovskite.cli.root import cli
from tests.campaign.test_campaign_spec import INVALID, VALID

ROOT = pathlib.Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "campaign.schema.json"
VALIDATOR = jsonschema.Draft7Validator(campaign_schema())


def test_the_published_schema_is_current():
    assert json.loads(PUBLISHED.read_text()) == campaign_schema(), (
        "regenerate it: aiida-perovskite campaign schema -o docs/campaign.schema.json"
    )


def test_the_cli_prints_the_schema():
    result = CliRunner().invoke(cli, ["campaign", "schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == campaign_schema()


def test_the_schema_is_valid_json_schema():
    jsonschema.Draft7Validator.check_schema(campaign_schema())


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_follows_the_schema_it_names(path):
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../docs/campaign.schema.json")
    errors = [error.message for error in VALIDATOR.iter_errors(yaml.safe_load(text))]
    assert not errors


def test_keys_the_schema_makes_optional_are_filled_by_the_protocol(tmp_path):
    minimal = {key: VALID[key] for key in VALIDATOR.schema["required"]}
    assert not list(VALIDATOR.iter_errors(minimal))
    for section in ("training", "exploration", "labeling"):
        minimal[section] = {"code": VALID[section]["code"]}
    campaign = parse_campaign(minimal, base_dir=tmp_path)
    assert campaign.max_labels >= 1 and campaign.stages["BaTiO3"] and campaign.trust["force_hi"] > 0
    assert campaign.labeling["engine"] == "cp2k"  # the default protocol's engine


# Override keys are the protocol's (load_protocol) and analysis settings the WorkChain's, not the file's shape.
SHAPE_ERRORS = [
    case
    for case in INVALID
    if ("unknown key" in case[2] or "did you mean" in case[2])
    and "overrides" not in case[1]
    and "polarization.settings" not in case[1]
] + [
    case
    for case in INVALID
    if case[1] in ("seed", "stages[0].ensemble", "systems.BaTiO3.structure.phase", "stages[0].temperatures")
]


@pytest.mark.parametrize(("data", "key", "words"), SHAPE_ERRORS, ids=[case[1] for case in SHAPE_ERRORS])
def test_the_schema_refuses_shape_errors_as_the_check_does(data, key, words, tmp_path):
    with pytest.raises(CampaignError):
        parse_campaign(data, base_dir=tmp_path)
    assert list(VALIDATOR.iter_errors(data)), f"the schema accepts what the check refuses at {key}"


def _fields(schema: dict) -> list[tuple[str, str, str]]:
    """(model, field, key path) of every field of every model of the file, at every place the model is used."""
    definitions, found = schema["$defs"], []

    def model_of(node: dict) -> str | None:
        for option in (node, *node.get("anyOf", [])):
            for candidate in (option, option.get("items", {}), option.get("additionalProperties") or {}):
                if isinstance(candidate, dict) and "$ref" in candidate:
                    return candidate["$ref"].rsplit("/", 1)[1]
        return None

    def walk(model: str, node: dict, path: str) -> None:
        for field, sub in node.get("properties", {}).items():
            key = f"{path}.{field}" if path else field
            found.append((model, field, key))
            if child := model_of(sub):
                walk(child, definitions[child], key)

    walk("CampaignFile", schema, "")
    return found


def test_the_invalid_cases_cover_every_field_of_every_model():
    """Each field of each model of the campaign file is named by at least one invalid-campaign case (at any place
    the model is used: a Stage field tested under stages[0] covers it under systems.<name>.stages too)."""

    def general(key: str) -> str:
        return re.sub(r"\[\d+\]", "", re.sub(r"^systems\.[^.\[]+", "systems", key))

    cases = {general(key) for _, key, _ in INVALID}
    fields = _fields(campaign_schema())
    covered = {
        (model, field) for model, field, path in fields if any(c == path or c.startswith(f"{path}.") for c in cases)
    }
    missing = sorted({f"{model}.{field} ({path})" for model, field, path in fields if (model, field) not in covered})
    assert not missing, f"no invalid-campaign case for: {missing}"
