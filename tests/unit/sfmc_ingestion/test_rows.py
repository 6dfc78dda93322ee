"""Row typing (strings -> dates in the account's zone, booleans, numbers) and rows -> profile events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from activation_core.models.events import ProfileEventDetail
from local.fakes.sfmc import example_ingestion_config, sfmc_date
from sfmc_ingestion.config import parse_ingestion_config
from sfmc_ingestion.models import MappingRule, SourceRef, parse_time_zone
from sfmc_ingestion.rows import ColumnError, RowTransformer, convert, iso, parse_date, to_filter_literal

CST = parse_time_zone("-06:00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6/23/2024 12:00:00 AM", "2024-06-23T06:00:00Z"),  # midnight in UTC-6
        ("6/23/2024 12:00:00 PM", "2024-06-23T18:00:00Z"),  # noon
        ("12/31/2024 11:59:59 PM", "2025-01-01T05:59:59Z"),  # crosses the year in UTC
        ("1/2/2025 3:04:05 am", "2025-01-02T09:04:05Z"),
        ("6/23/2024", "2024-06-23T06:00:00Z"),
        ("6/23/2024 13:30:00", "2024-06-23T19:30:00Z"),
        ("2024-06-23T00:00:00", "2024-06-23T06:00:00Z"),  # ISO without offset: the account's zone
        ("2024-06-23T00:00:00Z", "2024-06-23T00:00:00Z"),  # ISO with an offset keeps it
    ],
)
def test_sfmc_dates_are_read_in_the_account_time_zone(text: str, expected: str) -> None:
    assert iso(parse_date(text, CST)) == expected


def test_sfmc_an_iana_account_zone_follows_daylight_saving() -> None:
    chicago = parse_time_zone("America/Chicago")
    assert iso(parse_date("7/1/2024 12:00:00 AM", chicago)) == "2024-07-01T05:00:00Z"  # CDT, UTC-5
    assert iso(parse_date("1/1/2024 12:00:00 AM", chicago)) == "2024-01-01T06:00:00Z"  # CST, UTC-6


def test_com_06_a_value_that_is_not_a_date_is_not_quoted_in_the_error() -> None:
    """A row's date column may hold anything (a birth date, an e-mail typed into the wrong column): the
    error names the problem, never the value, whoever catches and prints it."""
    with pytest.raises(ValueError) as raised:
        parse_date("Ada.Lovelace@Example.com", CST)
    assert "Lovelace" not in str(raised.value)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_sfmc_dates_round_trip_through_sfmc_text_and_the_filter_literal(moment: datetime) -> None:
    aware = moment.replace(microsecond=0, tzinfo=UTC)
    assert parse_date(sfmc_date(aware), CST) == aware
    literal = to_filter_literal(iso(aware), CST, "%Y-%m-%dT%H:%M:%S")
    assert parse_date(literal, CST) == aware


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("True", "Boolean", True),
        ("false", "Boolean", False),
        ("1", "Boolean", True),
        ("42", "Number", 42),
        ("1,234", "Number", 1234),
        ("12.50", "Decimal", 12.5),
        ("12", "Decimal", 12),
        ("-0.25", "Decimal", -0.25),
        ("", "Number", None),
        ("   ", "Date", None),
        (None, "Text", None),
        ("  keep spaces ", "Text", "  keep spaces "),
        ("a@b.co", "EmailAddress", "a@b.co"),
    ],
)
def test_sfmc_values_arrive_as_strings_and_are_typed(raw: Any, kind: Any, expected: Any) -> None:
    value = convert("Col", raw, kind, CST)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("yes please", "Boolean"), ("4.5", "Number"), ("NaN", "Decimal"), ("13/45/2024", "Date")],
)
def test_sfmc_an_invalid_value_names_its_column_not_its_value(raw: str, kind: Any) -> None:
    with pytest.raises(ColumnError) as err:
        convert("Secret_Col", raw, kind, CST)
    assert err.value.column == "Secret_Col"
    assert raw not in str(err.value)


def transformer(key: str = "Contacts") -> RowTransformer:
    (source,) = parse_ingestion_config(example_ingestion_config()).sources
    de = next(d for d in source.data_extensions if d.key == key)
    return RowTransformer(
        de, SourceRef(id=source.id, secret=source.secret), CST, "run-1", "2026-11-28T10:00:00Z"
    )


def contact(**values: str) -> dict[str, Any]:
    row = {
        "emailaddress": " Ada.Lovelace@Example.com ",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Analytical Engines",
        "country": "us",
        "lifecyclestage": "loyal",
        "purchasecount": "7",
        "lifetimevalue": "1,250.75",
        "lastpurchasedate": "11/1/2026 9:15:00 AM",
        "emailoptin": "True",
        "modifieddate": "11/20/2026 8:00:00 AM",
    }
    row.update(values)
    return {"keys": {"subscriberkey": "SK-1"}, "values": row}


def test_sfmc_04_a_contact_row_becomes_a_valid_profile_updated_detail() -> None:
    result = transformer().transform(contact())
    assert result.ok and result.event is not None
    detail = ProfileEventDetail.model_validate(result.event)
    assert detail.profile.identities == {"sfmcSubscriberKey": "SK-1", "email": "ada.lovelace@example.com"}
    assert detail.profile.attributes["person"] == {"name": {"firstName": "Ada", "lastName": "Lovelace"}}
    assert detail.profile.attributes["workAddress"] == {"countryCode": "US"}
    assert detail.profile.attributes["commerce"] == {
        "purchaseCount": 7,
        "lifetimeValue": 1250.75,
        "lastPurchaseDate": "2026-11-01T15:15:00Z",
    }
    assert detail.profile.consents == {"marketing.email": "y"}
    assert detail.occurred_at == datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    assert [(a.id, a.status, a.origin) for a in detail.audiences] == [
        ("aud-expo-invitees", "realized", "upload")
    ]
    assert result.event["origin"] == {
        "system": "sfmc",
        "sourceId": "sfmc-main",
        "dataExtension": "Contacts",
        "runId": "run-1",
    }
    assert result.incremental == "2026-11-20T14:00:00Z"


def test_sfmc_event_ids_identify_a_row_version() -> None:
    t = transformer()
    first, again = t.transform(contact()), t.transform(contact())
    changed = t.transform(contact(modifieddate="11/20/2026 9:00:00 AM"))
    assert first.event and again.event and changed.event
    assert first.event["eventId"] == again.event["eventId"]
    assert first.event["eventId"] != changed.event["eventId"]
    assert first.pk_digest == changed.pk_digest


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"emailaddress": ""}, "missing_required:emailaddress"),
        ({"purchasecount": "seven"}, "invalid_value:purchasecount"),
        ({"emailoptin": "maybe"}, "invalid_value:emailoptin"),
    ],
)
def test_sfmc_a_row_that_cannot_be_a_profile_is_failed_with_a_reason(
    values: dict[str, str], error: str
) -> None:
    result = transformer().transform(contact(**values))
    assert not result.ok and result.event is None
    assert result.errors == [error]
    assert result.raw["emailaddress"] == contact(**values)["values"]["emailaddress"]


def test_sfmc_a_row_without_its_primary_key_is_failed() -> None:
    row = contact()
    row["keys"] = {}
    assert transformer().transform(row).errors == ["missing_primary_key:subscriberkey"]


def test_sfmc_field_names_are_matched_case_insensitively() -> None:
    row = contact()
    row["values"] = {k.upper(): v for k, v in row["values"].items()}
    row["keys"] = {"SUBSCRIBERKEY": "SK-1"}
    result = transformer().transform(row)
    assert result.ok and result.event is not None
    assert result.event["profile"]["identities"]["email"] == "ada.lovelace@example.com"


def test_sfmc_a_consent_from_text_and_a_row_without_identity() -> None:
    result = transformer().transform(contact(emailoptin="False"))
    assert result.event is not None and result.event["profile"]["consents"] == {"marketing.email": "n"}
    activity = transformer("Web_Activity")
    no_identity = activity.transform({"keys": {"activityid": "A1"}, "values": {"subscriberkey": ""}})
    assert no_identity.errors == ["missing_required:subscriberkey"]


def test_sfmc_to_filter_literal_is_account_local_time() -> None:
    assert to_filter_literal("2026-11-20T14:30:00Z", CST, "%Y-%m-%dT%H:%M:%S") == "2026-11-20T08:30:00"
    assert to_filter_literal("2026-11-20T14:30:00Z", timezone(timedelta(0)), "%m/%d/%Y %I:%M:%S %p") == (
        "11/20/2026 02:30:00 PM"
    )


@pytest.mark.parametrize(
    "values", [["SK-1"], ["a b", "CMP-2026"], ['quo"te'], ["back\\slash"], ["é"], ["tab\t"]]
)
def test_the_fast_primary_key_digest_is_the_documented_digest(values: list[str]) -> None:
    from sfmc_ingestion.rows import _digest_of_text, _plain, digest

    if all(_plain(v) for v in values):
        assert _digest_of_text('["' + '","'.join(values) + '"]') == digest(values)
    assert not _plain('quo"te') and not _plain("é") and not _plain("tab\t")


def test_the_event_id_is_the_digest_of_source_key_primary_key_and_version() -> None:
    from sfmc_ingestion.rows import digest

    result = transformer().transform(contact())
    assert result.event is not None and result.incremental == "2026-11-20T14:00:00Z"
    expected = digest(["sfmc-main", "Contacts", digest(["SK-1"]), "2026-11-20T14:00:00Z"])
    assert result.event["eventId"] == "sfmc-" + expected


_CLOCK = st.builds(
    lambda d, h, m, s, meridiem: f"{d.month}/{d.day}/{d.year} {h}:{m:02d}:{s:02d} {meridiem}",
    st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2099, 12, 31).date()),
    st.integers(0, 13),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["AM", "PM", "am", "XM"]),
)


@given(
    st.lists(
        st.one_of(_CLOCK, st.sampled_from(["6/23/2024", " 6/23/2024 1:02:03 AM", "2024-06-23T00:00:00"]))
    ),
    st.sampled_from(["-06:00", "+00:00", "+05:30", "+14:00", "America/Chicago"]),
)
@example(
    ["6/23/2024 1:02:03 AM", "6/23/2024 1:04:05 PM", "6/23/2024 1:60:00 AM", "6/23/2024 1:2:03 AM"], "-06:00"
)
@example(["12/31/2024 11:59:59 PM", "12/31/2024 11:00:00 PM", "1/1/2025 12:00:00 AM"], "+14:00")
@example(["6/23/2024 1:02:03 AM", "6/23/2024 1:1\u0663:00 AM"], "-06:00")  # another script's digit 3
def test_sfmc_a_page_of_dates_is_typed_as_each_date_alone(texts: list[str], zone_name: str) -> None:
    """The page's per-hour cache of converted dates (rows.py `_HourCache`) never changes a value."""
    zone = parse_time_zone(zone_name)
    (source,) = parse_ingestion_config(example_ingestion_config()).sources
    de = next(d for d in source.data_extensions if d.key == "Web_Activity")
    rows = RowTransformer(de, SourceRef(id=source.id, secret=source.secret), zone, "run-1", "x")
    for n, text in enumerate(texts * 2):  # twice: the second pass reads what the first remembered
        result = rows.transform({"keys": {"activityid": f"A{n}"}, "values": {"occurredat": text}})
        try:
            expected = convert("OccurredAt", text, "Date", zone)
        except ColumnError:
            assert result.errors == ["invalid_value:occurredat"] and result.row["occurredat"] is None
        else:
            assert result.row["occurredat"] == expected


def test_attribute_paths_that_overlap_are_built_in_mapping_order() -> None:
    """A rule writing a value where another rule's path goes replaces the dict, and a later rule on
    that path makes a new one: rules that share a path reuse its dict only while nothing came between."""
    de = transformer().de.model_copy(
        update={
            "mapping": [
                MappingRule(column="SubscriberKey", target="identities.sfmcSubscriberKey"),
                MappingRule(column="FirstName", target="attributes.person.first"),
                MappingRule(column="LastName", target="attributes.person.last"),
                MappingRule(column="Company", target="attributes.person"),
                MappingRule(column="Country", target="attributes.person.country"),
                MappingRule(column="LifecycleStage", target="attributes.stage"),
                MappingRule(column="State", target="attributes.person.state"),
            ]
        }
    )
    t = RowTransformer(de, SourceRef(id="s", secret="x"), CST, "run-1", "2026-11-28T10:00:00Z")
    event = t.transform(contact(state="CA")).event
    assert event is not None
    assert event["profile"]["attributes"] == {"person": {"country": "us", "state": "CA"}, "stage": "loyal"}
    without_company = t.transform(contact(company="", state="CA")).event
    assert without_company is not None
    assert without_company["profile"]["attributes"] == {
        "person": {"first": "Ada", "last": "Lovelace", "country": "us", "state": "CA"},
        "stage": "loyal",
    }


HOSTILE_NAMES = (
    "x'] = 1; raise SystemExit(3) #",
    '"); raise SystemExit(3) #',
    "line\nbreak\\",
    "{t0}",
    "\u2028é",
)


def test_column_names_from_the_rowset_are_data_never_code() -> None:
    """The row mapper is generated per row shape (rows.py `_MapperSource`): names SFMC returns, whatever
    their text, become dict keys as they are; none of it runs."""
    t = transformer()
    item = contact()
    item["values"].update({name: f"value {n}" for n, name in enumerate(HOSTILE_NAMES)})
    result = t.transform(item)
    assert result.ok, result.errors
    assert [result.row[name] for name in HOSTILE_NAMES] == [f"value {n}" for n in range(len(HOSTILE_NAMES))]
    assert result.event is not None
    assert result.event["profile"] == t.transform(contact()).event["profile"]  # type: ignore[index]


def test_sfmc_04_a_repeated_primary_key_column_leaves_every_attribute_in_its_own_place() -> None:
    """The generated mapper's locals for the key values never shadow the attribute paths it refers to
    (a data extension whose primary key names one column 40 times, which the config accepts, made p<n>
    locals that shadowed the paths: an attribute was written under another one)."""
    (source,) = parse_ingestion_config(example_ingestion_config()).sources
    de = next(d for d in source.data_extensions if d.key == "Contacts")
    repeated = de.model_copy(update={"primary_key": [de.primary_key[0]] * 40})
    t = RowTransformer(
        repeated, SourceRef(id=source.id, secret=source.secret), CST, "run-1", "2026-11-28T10:00:00Z"
    )
    ours, plain = t.transform(contact()), transformer().transform(contact())
    assert ours.ok and plain.ok and ours.event is not None and plain.event is not None
    assert ours.event["profile"]["attributes"] == plain.event["profile"]["attributes"]
