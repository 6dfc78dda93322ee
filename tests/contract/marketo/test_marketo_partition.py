"""MKT-01 / MKT-07: the partition is checked when the instance connects (it must exist: Marketo's
partition list), may be given by name or by id (the document asks for a partition ID), and new leads
go to it."""

from __future__ import annotations

from typing import Any

import pytest

from activation_core.errors import ConfigError
from activation_core.models.config import DestinationInstance
from activation_core.outcomes import Kind
from local.fakes.marketo import FakeMarketo
from marketo.service import MarketoDestination
from tests.contract.marketo.conftest import Recorder, make_run, marketo_instance, profile, settings_for


def connect(function_settings: Any, recorder: Recorder, **settings: Any) -> Any:
    instance = DestinationInstance.model_validate(marketo_instance(**settings))
    return MarketoDestination(emit_metric=recorder.metric, sleep=recorder.sleep).connect(
        instance, function_settings
    )


def test_mkt_01_an_unknown_partition_is_refused_when_the_instance_connects(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    with pytest.raises(ConfigError, match=r"settings\.partition.*Nowhere") as refused:
        connect(function_settings, recorder, **settings_for("profile_only", "update_and_create", "Nowhere"))
    assert "Default" in refused.value.detail and "Expo" in refused.value.detail  # what exists, named
    assert [r.path for r in fake.requests if r.path.startswith("/rest/")] == [
        "/rest/v1/leads/partitions.json"
    ]


def test_mkt_01_a_known_partition_connects_after_one_partition_call(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    connect(function_settings, recorder, **settings_for("profile_only", "update_and_create", "Expo"))
    assert len(fake.calls_to("partitions")) == 1
    connect(function_settings, recorder, **settings_for("profile_only", "update_and_create", "Expo"))
    assert len(fake.calls_to("partitions")) == 1  # known for a day in this container


def test_mkt_07_a_partition_given_by_id_receives_new_leads_by_name(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    expo_id = next(i for i, name in fake.partitions.items() if name == "Expo")
    instance = marketo_instance(**settings_for("profile_only", "update_and_create", str(expo_id)))
    outcomes = make_run(function_settings, recorder, instance)([profile("new@example.com")])
    assert outcomes["m-0"].kind is Kind.DELIVERED
    (lead,) = fake.leads_where("email", "new@example.com")
    assert fake.partition_of(lead["id"]) == "Expo"
    (sync,) = fake.calls_to("sync")
    assert sync.json()["partitionName"] == "Expo"


def test_mkt_01_partitions_unreachable_at_connect_are_checked_before_the_first_sync(
    fake: FakeMarketo, connection: Any, function_settings: Any, recorder: Recorder
) -> None:
    fake.fail_next(r"partitions\.json", 3, 503)
    instance = marketo_instance(**settings_for("profile_only", "update_and_create", "Nowhere"))
    run = make_run(function_settings, recorder, instance)  # connects: the check is deferred, not skipped
    outcomes = run([profile("new@example.com")])
    assert (
        outcomes["m-0"].reason.startswith("invalid_config:")
        and "settings.partition" in outcomes["m-0"].detail
    )
    assert fake.calls_to("sync") == []
