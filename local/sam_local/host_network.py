"""The SAM CLI, with every Lambda container on the host network and reached over loopback only.

Run with the SAM CLI's own interpreter: `.sam-venv/bin/python local/sam_local/host_network.py local invoke ...`
(the arguments are the `sam` command's). SAM CLI 1.170 accepts `--docker-network host` but does not
put the container on it (it only skips `network.connect`), so with a daemon started without its
default bridge (`dockerd --bridge=none --iptables=false`, this project's rule: no private-range
address) the container would have no network at all. This wrapper changes the one Docker API call
that creates a Lambda container (labelled `sam.cli.container.type=lambda` by SAM):

- `network_mode="host"`, so the function reaches moto and the vendor fakes on 127.0.0.1;
- no published ports (meaningless on the host network); instead the emulator (RIE) listens on
  127.0.0.1 at the port SAM chose for it (`--runtime-interface-emulator-address`), not 0.0.0.0:8080;
- the Runtime API on a free loopback port (`--runtime-api-address`), not 127.0.0.1:9001, so several
  warm containers (`sam local start-lambda`) never collide;
- every variable of the function's entry in the `--env-vars` file (and of its `Parameters` entry):
  SAM itself passes only the variables the template declares, so AWS_ENDPOINT_URL (the local
  stack's moto) would not reach the function.

Everything else (image build, layers under /opt, environment, timeouts) is SAM's own code.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

from docker.models.containers import ContainerCollection

RIE_CONTAINER_PORT = "8080"
_create = ContainerCollection.create
_ENV_VARS: dict[str, dict[str, str]] = {}  # the --env-vars document, by function logical id


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def env_vars_file(argv: list[str]) -> Path | None:
    """The `--env-vars`/`-n` file of a `sam local` command line, if any."""
    for i, arg in enumerate(argv):
        if arg in {"--env-vars", "-n"} and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--env-vars="):
            return Path(arg.split("=", 1)[1])
    return None


def lambda_container_kwargs(
    kwargs: dict[str, Any], env_vars: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """The `containers.create` arguments of a SAM Lambda container, moved to the host network."""
    labels = kwargs.get("labels") or {}
    if labels.get("sam.cli.container.type") != "lambda":
        return kwargs
    moved = dict(kwargs)
    document = _ENV_VARS if env_vars is None else env_vars
    function = labels.get("sam.cli.function.name", "")
    extra = {**document.get("Parameters", {}), **document.get(function, {})}
    moved["environment"] = {**(moved.get("environment") or {}), **{k: str(v) for k, v in extra.items()}}
    ports = moved.pop("ports", None) or {}
    _interface, rie_port = ports[RIE_CONTAINER_PORT]
    moved["network_mode"] = "host"
    moved["entrypoint"] = [
        *(moved.get("entrypoint") or []),
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{rie_port}",
        "--runtime-api-address",
        f"127.0.0.1:{_free_loopback_port()}",
    ]
    return moved


def _create_on_host_network(self: ContainerCollection, image: str, command: Any = None, **kwargs: Any) -> Any:
    return _create(self, image, command, **lambda_container_kwargs(kwargs))


def main() -> int:
    path = env_vars_file(sys.argv[1:])
    if path is not None:
        _ENV_VARS.update(json.loads(path.read_text()))
    ContainerCollection.create = _create_on_host_network
    from samcli.cli.main import cli  # the SAM CLI's venv only

    sys.argv[0] = "sam"
    return int(cli() or 0)


if __name__ == "__main__":
    sys.exit(main())
