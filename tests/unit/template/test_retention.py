"""Retention: every stored copy of personal data has a stated end, and deleting or replacing the stack
loses no undelivered record or watermark by accident (docs/decisions.md, 2026-12-07)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from activation_core import naming, settled
from local.harness import DESTINATION_TYPES
from local.sam_translate import translate
from tests.support import properties_of_type

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"
# Undelivered records (queues, DLQs) and watermarks (state table) must survive a deleted stack.
KEEP_ON_DELETE = ("AWS::SQS::Queue", "AWS::DynamoDB::Table.StateTable", "AWS::S3::Bucket")


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return dict(
        translate(
            TEMPLATE,
            region="us-east-1",
            parameters={},
            upload=lambda logical_id, path: f"s3://b/{logical_id}",
        )
    )


def test_every_stateful_resource_declares_what_happens_on_delete_and_replace() -> None:
    """cfn-lint's I3011 lists the stateful resources (tables, queues, log groups, buckets ...) without
    an explicit DeletionPolicy and UpdateReplacePolicy: none may be left to the default."""
    from cfnlint.api import lint_all

    assert [str(m) for m in lint_all(TEMPLATE.read_text()) if m.rule.id == "I3011"] == []


def test_undelivered_records_and_watermarks_survive_a_deleted_or_replaced_stack(cfn: dict[str, Any]) -> None:
    for name, resource in cfn["Resources"].items():
        if resource["Type"] in KEEP_ON_DELETE or f"{resource['Type']}.{name}" in KEEP_ON_DELETE:
            assert resource.get("DeletionPolicy") == "Retain", name
            assert resource.get("UpdateReplacePolicy") == "Retain", name


def test_landed_sfmc_rows_expire_after_a_configurable_time_and_access_is_logged(cfn: dict[str, Any]) -> None:
    resources = cfn["Resources"]
    bucket = resources["SfmcLandingBucket"]["Properties"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireLandedRows"]["Status"] == "Enabled"
    assert rules["ExpireLandedRows"]["ExpirationInDays"] == {"Ref": "LandingRetentionDays"}
    assert (
        "Prefix" not in rules["ExpireLandedRows"] and "Filter" not in rules["ExpireLandedRows"]
    )  # every object
    parameters = yaml_parse(TEMPLATE.read_text())["Parameters"]
    assert 1 <= parameters["LandingRetentionDays"]["Default"] <= 90
    log_bucket = bucket["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    logs = resources[log_bucket]["Properties"]
    # S3 delivers server access logs only to an SSE-S3 bucket, and they expire too.
    assert logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert [r["ExpirationInDays"] for r in logs["LifecycleConfiguration"]["Rules"]] == [
        {"Ref": "AccessLogRetentionDays"}
    ]
    policies = [
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": log_bucket}
    ]
    sources = [
        s["Condition"]["ArnLike"]["aws:SourceArn"]
        for p in policies
        for s in p["Statement"]
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
    ]
    # Every bucket that logs there may deliver, and only those (the snapshot bucket logs there too).
    logging_buckets = [
        {"Fn::GetAtt": [name, "Arn"]}
        for name, r in resources.items()
        if r["Type"] == "AWS::S3::Bucket"
        and r["Properties"].get("LoggingConfiguration", {}).get("DestinationBucketName")
        == {"Ref": log_bucket}
    ]
    assert {"Fn::GetAtt": ["SfmcLandingBucket", "Arn"]} in sources
    assert sorted(map(str, sources)) == sorted(map(str, logging_buckets))


def test_every_queue_log_group_and_table_item_has_a_stated_end(cfn: dict[str, Any]) -> None:
    for name, resource in cfn["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Logs::LogGroup":
            assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        if resource["Type"] == "AWS::DynamoDB::Table":
            assert props["TimeToLiveSpecification"]["Enabled"] is True, name
        if resource["Type"] == "AWS::SQS::Queue" and name.endswith("DeadLetterQueue"):
            # Rejected events (identities, attributes) end when the operator says, within SQS's bounds.
            assert props["MessageRetentionPeriod"] == {"Ref": "DeadLetterRetentionSeconds"}, name
    dead_letters = yaml_parse(TEMPLATE.read_text())["Parameters"]["DeadLetterRetentionSeconds"]
    # SQS MessageRetentionPeriod: 60 to 1,209,600 seconds (SetQueueAttributes); moto does not refuse more.
    assert (dead_letters["MinValue"], dead_letters["MaxValue"]) == (60, 1_209_600)
    assert dead_letters["Default"] <= dead_letters["MaxValue"]


def test_order_guards_and_deletion_check_keys_expire_after_a_configurable_time(cfn: dict[str, Any]) -> None:
    """The state table's TTL attribute is the one the guards and the deletion-check keys write; their
    retention is a parameter every function reads (Globals), with a default stated in the README."""
    table = cfn["Resources"]["StateTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    parameters = yaml_parse(TEMPLATE.read_text())["Parameters"]
    for variable, parameter in (
        ("ORDER_GUARD_RETENTION_DAYS", "OrderGuardRetentionDays"),
        ("DELETION_KEY_RETENTION_DAYS", "DeletionKeyRetentionDays"),
    ):
        for name, resource in cfn["Resources"].items():
            if resource["Type"] == "AWS::Lambda::Function":
                variables = resource["Properties"]["Environment"]["Variables"]
                assert variables[variable] == {"Ref": parameter}, name
        assert parameters[parameter]["Default"] == 400
    # A guard must outlive every event the stack still holds (DLQs keep them 14 days).
    assert parameters["OrderGuardRetentionDays"]["MinValue"] > 14
    readme = (TEMPLATE.parent / "README.md").read_text()
    assert "`OrderGuardRetentionDays` (default 400" in readme
    assert "`DeletionKeyRetentionDays` (default 400" in readme


def test_every_snapshot_bucket_prefix_expires_after_a_configurable_time(cfn: dict[str, Any]) -> None:
    """Uploaded snapshots, a run's partitions and the current membership (kept until the next snapshot,
    and at most SnapshotMembershipRetentionDays without one) all hold personal data."""
    rules = {
        r["Prefix"]: r
        for r in cfn["Resources"]["SnapshotBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        if "Prefix" in r
    }
    parameters = yaml_parse(TEMPLATE.read_text())["Parameters"]
    for prefix, parameter, default in (
        ("incoming/", "SnapshotIncomingRetentionDays", 30),
        ("runs/", "SnapshotRunRetentionDays", 7),
        ("state/", "SnapshotMembershipRetentionDays", 400),
    ):
        assert rules[prefix]["Status"] == "Enabled"
        assert rules[prefix]["ExpirationInDays"] == {"Ref": parameter}
        assert parameters[parameter]["Default"] == default
    # The erasure markers a commit applies again live as long as a membership may.
    variables = cfn["Resources"]["SnapshotErasureFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["STATE_RETENTION_DAYS"] == {"Ref": "SnapshotMembershipRetentionDays"}
    readme = (TEMPLATE.parent / "README.md").read_text()
    for parameter, default in (
        ("SnapshotIncomingRetentionDays", 30),
        ("SnapshotRunRetentionDays", 7),
        ("SnapshotMembershipRetentionDays", 400),
    ):
        assert f"`{parameter}` (default {default}" in readme


def _retention_rows() -> list[str]:
    """The rows of the README's table of where personal data is stored, and for how long."""
    readme = (TEMPLATE.parent / "README.md").read_text()
    table = readme.split("Where personal data is stored, and for how long:", 1)[1].split("\n\n", 2)[1]
    return [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| copy ")]


def test_the_copies_aws_keeps_for_the_stack_have_a_stated_end(cfn: dict[str, Any]) -> None:
    """Copies the template asks AWS to keep beside the stores themselves: a table's point-in-time
    recovery keeps every version of every item, those deleted by TTL or an erasure request included,
    for its recovery period (35 days unless RecoveryPeriodInDays says otherwise:
    docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PointInTimeRecoverySpecification.html);
    a Standard state machine's execution history (each state's input and output: the SFMC work items
    carry primary-key digests) is kept 90 days after the execution closes
    (docs.aws.amazon.com/step-functions/latest/dg/express-at-least-once-execution.html)."""
    rows = _retention_rows()
    tables = properties_of_type(cfn["Resources"], "AWS::DynamoDB::Table")
    for name, table in tables.items():
        recovery = table.get("PointInTimeRecoverySpecification", {})
        if recovery.get("PointInTimeRecoveryEnabled"):
            days = recovery.get("RecoveryPeriodInDays", 35)
            assert [r for r in rows if "point-in-time recovery" in r and f"{days} days" in r], name
    machines = properties_of_type(cfn["Resources"], "AWS::StepFunctions::StateMachine")
    assert machines
    if any(m.get("StateMachineType", "STANDARD") == "STANDARD" for m in machines.values()):
        assert [r for r in rows if "execution history" in r and "90 days" in r]


def test_a_snapshot_written_anywhere_in_the_bucket_expires(cfn: dict[str, Any]) -> None:
    """docs/snapshots.md lets a producer write a snapshot anywhere in the bucket and announce it with an
    `Audience Snapshot Ready` event: outside incoming/, runs/ and state/ it matched no rule and was
    kept for ever. A rule on every object ends it after SnapshotMembershipRetentionDays at most; where
    two expirations overlap S3 honours the shorter
    (docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-conflicts.html), so the prefixes keep
    their own."""
    rules = cfn["Resources"]["SnapshotBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    whole = [
        r
        for r in rules
        if "Prefix" not in r and "Filter" not in r and "ExpirationInDays" in r and r["Status"] == "Enabled"
    ]
    assert [r["ExpirationInDays"] for r in whole] == [{"Ref": "SnapshotMembershipRetentionDays"}]
    assert [r for r in _retention_rows() if "snapshot bucket" in r and "anywhere else" in r]


def test_com_08_a_settled_message_is_remembered_for_longer_than_its_queue_can_deliver_it_again(
    cfn: dict[str, Any],
) -> None:
    """A redelivered copy was sent before its outcome settled and its queue keeps it at most its
    retention: the settled-message item (activation_core.settled) must outlive that."""
    for destination in DESTINATION_TYPES:
        queue = cfn["Resources"][f"{naming.logical_prefix(destination)}Queue"]["Properties"]
        retention = queue.get("MessageRetentionPeriod", 345_600)  # SQS's default: 4 days
        assert retention <= settled.QUEUE_RETENTION_SECONDS < settled.RETENTION_SECONDS, destination
