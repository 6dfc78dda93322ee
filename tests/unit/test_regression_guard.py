"""Performance regression guards that are not timings (issue 8), so they hold on a busy machine too.

- What each Lambda handler imports at cold start, in a fresh interpreter that sees only what Lambda
  would (the layer's requirements plus boto3): no test tool, no CLI library, no module the handler
  does not need, and no more modules than a budget relative to `import boto3`.
- How many vendor calls, token requests and AWS calls a fixed RainFocus workload makes against the
  fake (moto in-process for AWS), so a change that doubles calls, mints a token per invocation or adds
  a DynamoDB round trip per record fails.

Timings live in `make bench` (tests/bench/bench_core.py, which these tests share their set-up with).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activation_core.outcomes import Kind
from local.fakes.rainfocus import FakeRainfocus
from tests.bench import bench_core as core
from tests.support import sqs_record

# Never loaded by a handler's import: each would be a cold-start cost (or a packaging mistake) in Lambda.
DENIED = {
    "moto": "an AWS test double",
    "pytest": "a test tool",
    "hypothesis": "a test tool",
    "tests": "the test suite",
    "local": "the local stack (dev only)",
    "yaml": "not a runtime dependency",
    "rich": "a CLI library (httpx loads its CLI when rich and click are installed)",
    "click": "a CLI library",
    "typer": "a CLI library",
    "pygments": "a CLI library",
    "pandas": "a data-science library",
    "numpy": "a data-science library",
    "requests": "a second HTTP client (the layer uses httpx)",
    "email_validator": "pydantic's optional email validator",
    "aws_lambda_powertools.utilities.parser": "every Powertools event model, built when pydantic is loaded",
    "aws_lambda_powertools.utilities.batch": "pulls in the parser models; activation_core.batch builds the "
    "partial batch response itself",
    "aws_lambda_powertools.utilities.data_classes": "every Powertools event class; not used by the handlers",
    "aws_lambda_powertools.utilities.idempotency": "not used: the order guard keeps idempotency itself",
    "aws_lambda_powertools.utilities.parameters": "imported on first use (config_store.load_destinations)",
    "aws_xray_sdk": "the X-Ray SDK: the Tracer is built on first use (observability.start_tracing, issue 18)",
    "botocore.client": "boto3's client machinery: loaded by the first AWS client (or by an eager X-Ray patch)",
}
# A handler may load this many times the modules `import boto3` loads (about 0.88 today, 1.55 before
# issue 18 made the X-Ray SDK lazy, 1.72 before issue 8): room for a few new modules, not for a new
# dependency tree.
MODULE_BUDGET = 1.0
# What the layer did before issues 8 and 18 (Powertools' batch utility, the X-Ray SDK patching botocore at
# import): the guard must see it.
HEAVY_IMPORT = "rainfocus.handler,aws_lambda_powertools.utilities.batch,aws_xray_sdk.ext.botocore.patch"


@pytest.fixture(scope="module")
def cold_imports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, core.ImportProbe]:
    site = core.build_lambda_site(tmp_path_factory.mktemp("lambda") / "site")
    return core.probe_imports([*core.handler_modules(), "boto3", HEAVY_IMPORT], site, parallel=True)


def _offending(loaded: frozenset[str]) -> dict[str, str]:
    return {
        denied: why
        for denied, why in DENIED.items()
        if any(name == denied or name.startswith(f"{denied}.") for name in loaded)
    }


def test_issue8_every_template_handler_is_checked() -> None:
    modules = core.handler_modules()
    assert "rainfocus.handler" in modules
    assert all((core.FUNCTIONS / (m.replace(".", "/") + ".py")).exists() for m in modules), modules


@pytest.mark.parametrize("module", core.handler_modules())
def test_issue8_handler_cold_import_loads_no_heavy_or_dev_module(
    module: str, cold_imports: dict[str, core.ImportProbe]
) -> None:
    offending = _offending(cold_imports[module].modules)
    assert not offending, (
        f"importing {module} (as Lambda would: layer requirements + boto3 only) loads modules a handler "
        f"must not load at cold start: {offending}. Import them inside the function that needs them, or "
        "drop the dependency."
    )


@pytest.mark.parametrize("module", core.handler_modules())
def test_issue8_handler_cold_import_stays_within_its_module_budget(
    module: str, cold_imports: dict[str, core.ImportProbe]
) -> None:
    loaded, boto3 = len(cold_imports[module].modules), len(cold_imports["boto3"].modules)
    assert loaded <= MODULE_BUDGET * boto3, (
        f"importing {module} loads {loaded} modules, more than {MODULE_BUDGET} x the {boto3} of `import "
        "boto3`: a new import tree came in at cold start (see `python -X importtime`, and make bench)"
    )


def test_issue8_the_import_guard_sees_the_powertools_batch_import_it_replaced(
    cold_imports: dict[str, core.ImportProbe],
) -> None:
    heavy = cold_imports[HEAVY_IMPORT]
    assert {
        "aws_lambda_powertools.utilities.batch",
        "aws_lambda_powertools.utilities.parser",
        "aws_xray_sdk",
        "botocore.client",
    } <= set(_offending(heavy.modules))
    assert len(heavy.modules) > MODULE_BUDGET * len(cold_imports["boto3"].modules)


_TRACING_PROBE = """
import json, sys
sys.path[:0] = sys.argv[1:]
import httpx
from activation_core import aws, http
from activation_core.observability import start_tracing
import rainfocus.handler
imported = "aws_xray_sdk" in sys.modules
aws.client("sqs")  # the first AWS client starts tracing
http.shared_client()
import botocore.client
tracer = start_tracing()
print(json.dumps({
    "xray_at_import": imported,
    "disabled": tracer.disabled,
    "botocore_patched": hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__"),
    "httpx_patched": type(http.shared_client()).__name__,
    "asyncio_loaded": "asyncio" in sys.modules,
}))
"""


def test_issue18_tracing_still_starts_before_the_first_outbound_call_as_deployed(tmp_path: Path) -> None:
    """Lazy X-Ray: nothing at import, but botocore and httpx are patched before the first client is used;
    and building the Tracer loads no asyncio (wrapt 2 imports it, wrapt 1.x as pinned does not: 60% of
    the Tracer's cost on the first invocation, docs/decisions.md)."""
    import json
    import os
    import subprocess

    site = core.build_lambda_site(tmp_path / "site")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **core.LAMBDA_ENV}
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # no call is made
    done = subprocess.run(
        [
            core.lambda_python(),
            "-I",
            "-S",
            "-c",
            _TRACING_PROBE,
            str(core.FUNCTIONS),
            str(core.LAYER),
            str(site),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "xray_at_import": False,
        "disabled": False,
        "botocore_patched": True,
        "httpx_patched": "_InstrumentedClient",
        "asyncio_loaded": False,
    }


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRainfocus]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # in-process moto intercepts AWS endpoints only
    with FakeRainfocus() as server, core.rainfocus_backend(core.rainfocus_connection(server)):
        yield server


def _batch(events: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [sqs_record(event, f"{prefix}-{i}") for i, event in enumerate(events)]


def test_rnf_05_fifty_profiles_make_exactly_fifty_store_calls_and_one_token_request(
    fake: FakeRainfocus,
) -> None:
    pipeline = core.rainfocus_pipeline()
    first = pipeline.process(_batch(core.profile_events(50, prefix="a"), "a"))
    assert [r.outcome.kind for r in first.values()] == [Kind.DELIVERED] * 50
    assert len(fake.requests_to("attendee/store")) == 50, "one store call per attendee, no more"
    assert fake.token_requests == 1
    second = pipeline.process(_batch(core.profile_events(10, prefix="b"), "b"))  # a warm invocation
    assert [r.outcome.kind for r in second.values()] == [Kind.DELIVERED] * 10
    assert len(fake.attendees) == 60
    assert fake.token_requests == 1, "the token is reused by the warm invocation"
    assert len(fake.requests) == 61, "no call besides the store calls and the one token request"


def test_rnf_01_ten_concurrent_cold_invocations_make_one_token_request_per_token_lifetime(
    fake: FakeRainfocus,
) -> None:
    events = core.profile_events(20, prefix="c")
    batches = [events[i * 2 : i * 2 + 2] for i in range(10)]
    with core.separate_containers() as memory:
        cold = core.cold_rainfocus_invocations(10, batches, memory)
        assert fake.token_requests == 1, (
            "10 cold containers must share one token (single flight under the lease)"
        )
        fake.expire_tokens()  # the vendor ends the token early: every container now holds a refused token
        refused = core.cold_rainfocus_invocations(10, batches, memory)
    kinds = [r.outcome.kind for batch in (*cold, *refused) for r in batch.values()]
    assert kinds == [Kind.DELIVERED] * 40
    assert fake.token_requests == 2, "one refresh for all 10 invocations that saw the token refused"
    # Calls made before the refresh landed are refused once and sent again once; later ones go through.
    assert 40 <= len(fake.requests_to("attendee/store")) <= 40 + 20, (
        "a refused call is sent again at most once"
    )


def test_issue18_guarded_records_cost_a_few_dynamodb_requests_per_batch_and_no_per_record_secret_read(
    fake: FakeRainfocus,
) -> None:
    """The handler's guard (order and idempotency): one read and one write request per batch of up to
    100 entities, whatever the batch size; no secret read per record."""
    from activation_core import aws
    from activation_core.config_store import parse_destinations
    from activation_core.guards import OrderGuard
    from activation_core.pipeline import Guards, Pipeline
    from rainfocus.service import RainfocusDestination

    calls: Counter[str] = Counter()
    for client in (
        aws.client("dynamodb"),
        aws.client("dynamodb", validated=False),
        aws.client("secretsmanager"),
    ):
        client.meta.events.register(
            "before-call",
            lambda model, **_: calls.update([f"{model.service_model.service_name}:{model.name}"]),
        )
    config = parse_destinations({"schemaVersion": "1", "destinations": [core.rainfocus_instance()]})
    guards = Guards(order=OrderGuard(core.STATE_TABLE, "rainfocus"))
    pipeline = Pipeline(RainfocusDestination(), core.function_settings(), lambda: config, guards)
    pipeline.process(_batch(core.profile_events(1, prefix="w"), "w"))  # token, connection: once per container
    calls.clear()
    results = pipeline.process(_batch(core.profile_events(20, prefix="g"), "g"))
    assert [r.outcome.kind for r in results.values()] == [Kind.DELIVERED] * 20
    dynamodb = {name: n for name, n in calls.items() if name.startswith("dynamodb:")}
    secrets = sum(n for name, n in calls.items() if name.startswith("secretsmanager:"))
    assert dynamodb == {"dynamodb:BatchGetItem": 1, "dynamodb:TransactWriteItems": 1}, dynamodb
    assert secrets == 0, f"a warm container reads no secret per record: {dict(calls)}"


def test_issue8_the_lambda_like_site_holds_only_the_layer_closure(tmp_path: Path) -> None:
    site = core.build_lambda_site(tmp_path / "site")
    names = {p.name for p in site.iterdir()}
    assert {"pydantic", "httpx", "aws_lambda_powertools", "boto3", "botocore"} <= names
    assert not {"moto", "pytest", "rich", "click", "yaml"} & names


def test_issue18_the_layer_ships_the_versions_the_cold_start_guards_measure() -> None:
    """The Lambda-like site links the dev venv's packages: every pin of the layer's requirements.txt is
    pinned the same in pyproject.toml and installed, so a guard or a figure never measures another version
    than the layer ships (e.g. wrapt, held at 1.x for the cold path)."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement

    def pins(lines: list[str]) -> dict[str, str]:
        found = {}
        for line in lines:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{line}: the layer pins exact versions"
            found[requirement.name.lower()] = spec.version
        return found

    text = (core.LAYER / "requirements.txt").read_text().splitlines()
    layer = pins([line.split("#")[0].strip() for line in text if line.split("#")[0].strip()])
    project = tomllib.loads((core.ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {name: version for name, version in pins(project).items() if name in layer}
    assert declared == layer, (
        "layers/activation_core/requirements.txt and pyproject.toml pin different versions"
    )
    installed = {name: metadata.version(name) for name in layer}
    assert installed == layer, "the dev venv is stale: run make install"
