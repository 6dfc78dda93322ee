"""An audience without a static list id (what users of other tools expect): its list is found by the
audience's name, or created in the configured folder of the workspace (Asset API), once for every
invocation, and its id kept (MKT-02 list membership, COM-04)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest

from activation_core.outcomes import Kind
from local.fakes.base import Request
from local.fakes.marketo import FakeMarketo
from marketo.service import clear_schema_cache
from tests.contract.conftest import STATE_TABLE
from tests.contract.marketo.conftest import EXPO, Recorder, make_run, marketo_instance, profile, settings_for

AUDIENCE_NAME = "Expo 2026 invitees"


def named_lists_instance(sync_type: str = "audience_and_profile", **settings: Any) -> dict[str, Any]:
    person_action = None if sync_type == "audience_only" else "update_and_create"
    instance = marketo_instance(
        **settings_for(sync_type, person_action), listFolder="Activation lists", **settings
    )
    instance["audiences"] = [{"id": EXPO, "name": AUDIENCE_NAME, "origin": "segmentation", "extras": {}}]
    return instance


def registry_item(fake: FakeMarketo) -> dict[str, Any]:
    key = {"pk": {"S": f"marketo#lists#{fake.munchkin_id}"}, "sk": {"S": AUDIENCE_NAME}}
    return dict(boto3.client("dynamodb").get_item(TableName=STATE_TABLE, Key=key).get("Item", {}))


@pytest.fixture
def folder(fake: FakeMarketo) -> int:
    fake.reset()  # no pre-made lists: the audience's list does not exist yet
    fake.add_partition("Expo")
    return fake.add_folder("Activation lists", workspace="Default")


def test_mkt_02_the_list_is_created_by_name_in_the_folder_once_and_its_id_kept(
    folder: int, fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    outcomes = make_run(function_settings, recorder, named_lists_instance())([profile("ada@example.com")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    (list_id,) = fake.lists_named(AUDIENCE_NAME)
    assert fake.list_folders[list_id] == folder
    (create,) = fake.calls_to("create_list")
    assert create.form()["name"] == AUDIENCE_NAME
    (lead,) = fake.leads_where("email", "ada@example.com")
    assert fake.members(list_id) == {lead["id"]}
    assert registry_item(fake)["listId"]["S"] == str(list_id)

    clear_schema_cache()  # a new container: the kept id is used, Marketo is not asked again
    again = make_run(function_settings, recorder, named_lists_instance())([profile("grace@example.com")])
    assert again["m-0"].kind is Kind.DELIVERED
    assert len(fake.calls_to("create_list")) == 1 and len(fake.calls_to("list_by_name")) == 1
    assert len(fake.members(list_id)) == 2


def test_mkt_02_an_existing_list_of_the_audience_name_is_used_not_duplicated(
    folder: int, fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    fake.add_list(4242, AUDIENCE_NAME, folder=folder)
    lead = fake.add_lead(email="grace@example.com")
    outcomes = make_run(function_settings, recorder, named_lists_instance("audience_only"))(
        [profile("grace@example.com")]
    )
    assert outcomes["m-0"].kind is Kind.DELIVERED
    assert fake.calls_to("create_list") == []
    assert fake.members(4242) == {lead}


def test_mkt_01_the_folder_must_exist_in_the_workspace(
    folder: int, fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    instance = named_lists_instance(workspace="Europe")  # the folder is in Default
    outcomes = make_run(function_settings, recorder, instance)([profile("ada@example.com")])
    assert outcomes["m-0"].reason == "invalid_config:marketo-expo2026"
    assert "settings.listFolder" in outcomes["m-0"].detail and "Europe" in outcomes["m-0"].detail
    assert fake.calls_to("create_list") == [] and fake.calls_to("list_add") == []


@pytest.mark.usefixtures("atomic_dynamodb_writes", "folder")
def test_mkt_02_two_concurrent_invocations_create_exactly_one_list(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    """The first invocation parks inside Marketo's create call; the second asks for the list meanwhile
    and must not create another one (it waits, then its records retry with the list still pending)."""
    arrived, release = threading.Event(), threading.Event()

    def hold_create(request: Request) -> None:
        if request.path.endswith("staticLists.json"):
            arrived.set()
            release.wait(10)

    fake.before_handling = hold_create
    first: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: first.update(
            make_run(function_settings, recorder, named_lists_instance())([profile("ada@example.com")])
        )
    )
    thread.start()
    assert arrived.wait(10)
    second = make_run(function_settings, recorder, named_lists_instance())([profile("grace@example.com")])
    release.set()
    thread.join(10)

    assert first["m-0"].kind is Kind.DELIVERED
    assert (second["m-0"].kind, second["m-0"].reason) == (Kind.RETRY, "marketo_list_pending")
    retried = make_run(function_settings, recorder, named_lists_instance())([profile("grace@example.com")])
    assert retried["m-0"].kind is Kind.DELIVERED
    (list_id,) = fake.lists_named(AUDIENCE_NAME)
    assert len(fake.members(list_id)) == 2
    assert len(fake.calls_to("create_list")) == 1 and fake.duplicate_entities() == []


def test_mkt_01_an_audience_without_list_id_needs_a_list_folder(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    instance = named_lists_instance()
    del instance["settings"]["listFolder"]
    outcomes = make_run(function_settings, recorder, instance)([profile("ada@example.com")])
    assert (
        outcomes["m-0"].reason == "invalid_config:marketo-expo2026" and "listFolder" in outcomes["m-0"].detail
    )
