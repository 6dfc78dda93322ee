"""`activation config push` names the (instance, audience) pairs that need a backfill."""

from __future__ import annotations

from activation_cli.config import newly_activated
from activation_core.models.config import DestinationsConfig


def config(*pairs: tuple[str, str]) -> DestinationsConfig:
    instances: dict[str, list[str]] = {}
    for instance, audience in pairs:
        instances.setdefault(instance, []).append(audience)
    return DestinationsConfig.model_validate(
        {
            "destinations": [
                {
                    "id": i,
                    "type": "marketo",
                    "secret": f"s/{i}",
                    "audiences": [{"id": a, "name": a} for a in auds],
                }
                for i, auds in instances.items()
            ]
        }
    )


def test_com_03_config_push_names_each_newly_activated_audience_as_needing_a_backfill() -> None:
    current = config(("m1", "a1"))
    new = config(("m1", "a1"), ("m1", "a2"), ("m2", "a1"))
    assert newly_activated(current, new) == [
        {"instance": "m1", "audience": "a2"},
        {"instance": "m2", "audience": "a1"},
    ]
    assert newly_activated(None, current) == [{"instance": "m1", "audience": "a1"}]
    assert newly_activated(new, new) == []


def test_com_08_snapshot_status_shows_a_running_runs_progress_per_instance() -> None:
    from rich.console import Console

    from activation_cli.snapshot import render

    progress = {
        "audienceId": "aud-expo", "runId": "s7", "stage": "diffing", "partitions": 16, "partitionsDone": 5,
        "instances": [{"instance": "outreach-sales", "sent": 1200, "delivered": 800, "skipped": 3, "rejected": 1,
                       "pending": 396}],
    }  # fmt: skip
    console = Console(width=220, record=True)
    console.print(render({"stack": "s", "running": [{"input": {}, "progress": progress}], "runs": []}))
    text = console.export_text()
    assert "RUNNING (diffing 5/16 partitions)" in text
    row = next(line for line in text.splitlines() if "outreach-sales" in line)
    assert [cell for cell in row.replace("│", " ").split() if cell.isdigit()] == [
        "1200",
        "800",
        "3",
        "1",
        "396",
    ]


def test_snapshot_status_names_the_runs_a_fold_out_of_time_dropped() -> None:
    """A run whose fold ran out of time lists the runs it dropped (`droppedRuns`): their additions may
    stay extra at the vendor (docs/snapshots.md, "Runs of one audience": what the operator does)."""
    from rich.console import Console

    from activation_cli.snapshot import render

    run = {"audienceId": "aud-expo", "runId": "s2", "status": "APPLIED", "members": 40, "droppedRuns": ["f2"]}
    console = Console(width=220, record=True)
    console.print(render({"stack": "s", "running": [], "runs": [run]}))
    assert "APPLIED, dropped runs: f2" in console.export_text()
