import pytest

from activation_core.errors import InvalidRecordError
from activation_core.hashing import email_lc_sha256
from activation_core.mapping import CompiledMapping
from activation_core.models.config import MappingRow

DOC = {
    "identities": {"email": " Ada@Example.com ", "crmId": "C-1"},
    "attributes": {
        "person": {"name": {"firstName": "  Ada ", "lastName": "Lovelace"}},
        "score": 42,
        "empty": " ",
    },
}


def compile_rows(*rows: dict[str, object]) -> CompiledMapping:
    return CompiledMapping([MappingRow.model_validate(r) for r in rows])


def test_com_05_dotted_paths_map_to_targets_and_identities() -> None:
    mapping = compile_rows(
        {
            "source": "identities.email",
            "target": "email",
            "identity": True,
            "transforms": ["email_lc_sha256"],
        },
        {"source": "attributes.person.name.firstName", "target": "firstname", "transforms": ["trim"]},
        {"source": "attributes.score", "target": "score", "transforms": ["to_string"]},
    )
    mapped = mapping.apply(DOC)
    assert mapped.identities == {"email": email_lc_sha256("ada@example.com")}
    assert mapped.fields == {"firstname": "Ada", "score": "42"}
    assert mapped.value("email") == email_lc_sha256("ada@example.com")
    assert mapping.identity_targets == {"email"}


def test_com_05_transforms_apply_in_order() -> None:
    mapping = compile_rows({"source": "identities.email", "target": "e", "transforms": ["trim", "uppercase"]})
    assert mapping.apply(DOC).fields == {"e": "ADA@EXAMPLE.COM"}


def test_com_05_missing_optional_values_are_left_out() -> None:
    mapping = compile_rows(
        {"source": "attributes.person.title", "target": "jobtitle"},
        {"source": "attributes.empty", "target": "blank"},
        {"source": "attributes.score.deeper", "target": "deep"},
    )
    assert mapping.apply(DOC).fields == {}


def test_com_05_missing_required_value_rejects_the_record_naming_the_target() -> None:
    mapping = compile_rows(
        {"source": "attributes.person.name.middle", "target": "middlename", "required": True}
    )
    with pytest.raises(InvalidRecordError) as err:
        mapping.apply(DOC)
    assert err.value.reason == "invalid_field:middlename"


def test_com_06_a_failing_transform_names_the_field_but_not_the_value() -> None:
    mapping = compile_rows({"source": "attributes.person", "target": "p", "transforms": ["lowercase"]})
    with pytest.raises(InvalidRecordError) as err:
        mapping.apply(DOC)
    assert err.value.field == "p"
    assert "Ada" not in str(err.value)


@pytest.mark.parametrize("source", ["email", "identities.", "attributes..x", "profile.x"])
def test_com_05_invalid_source_paths_are_refused_at_config_time(source: str) -> None:
    with pytest.raises(ValueError, match="source"):
        MappingRow.model_validate({"source": source, "target": "t"})


def test_com_05_unknown_transforms_are_refused_at_config_time() -> None:
    with pytest.raises(ValueError, match="unknown transform"):
        MappingRow.model_validate({"source": "identities.email", "target": "t", "transforms": ["md5"]})
