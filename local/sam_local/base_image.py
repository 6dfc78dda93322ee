"""A Lambda-compatible Python base image for `sam local`, built here when the official one cannot be pulled.

`sam local invoke` and `start-lambda` run a zip function on `public.ecr.aws/lambda/python:3.13-<arch>`
(SAM adds its runtime interface emulator and the layers on top). That gallery is not reachable from
this project's machines, so this module builds an image with the same contract and tags it with that
name; `sam local ... --skip-pull-image` then uses it. Where the gallery is reachable nothing changes:
without `--skip-pull-image` SAM pulls the official image over it.

The image, from Debian packages and PyPI only:
- a Debian root file system made by `debootstrap` (minbase) of the release whose python3 is the
  template's runtime version (trixie: python3.13), for the function's architecture (arm64 needs
  qemu-user-static's binfmt handler on an x86_64 machine);
- the AWS Lambda runtime interface client (`awslambdaric`) and boto3 (Lambda's Python runtime ships
  it; the layer does not) in /var/runtime, as PyPI wheels for that architecture and Python;
- the bytecode of /var/runtime compiled by that Python;
- `/var/runtime/bootstrap`, which the emulator execs: the runtime interface client on the function's
  handler, with Lambda's module path (/var/task, the layers' /opt/python, /var/runtime);
- Lambda's variables (LAMBDA_TASK_ROOT, LAMBDA_RUNTIME_DIR, LANG, TZ) and /var/task as working dir.

The image carries a label with the hash of its recipe (release, architecture, bootstrap, environment,
requirements): `ensure` builds only when the tagged image is missing or was built from another recipe.
Needs root (debootstrap) and a Docker daemon; run as `python -m local.sam_local.base_image ensure`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "runtime-requirements.txt"
PYTHON_VERSION = "3.13"  # template.yaml Globals Runtime (checked by tests/unit/local/test_sam_local.py)
DEBIAN_SUITE = "trixie"  # the Debian release whose python3 is PYTHON_VERSION
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
RECIPE_LABEL = "org.activation.sam-base-recipe"
RECIPE_VERSION = "2"  # bump when build() changes what goes into the image
REPOSITORY = "public.ecr.aws/lambda/python"  # what SAM CLI 1.170 runs a python3.13 zip function on

BOOTSTRAP = f"""#!/bin/sh
# Lambda-compatible bootstrap (local/sam_local/base_image.py): Debian's python{PYTHON_VERSION} runs the
# runtime interface client on the function's handler. Module path as in Lambda: code, layers, runtime.
export PYTHONPATH="/var/task:/opt/python/lib/python{PYTHON_VERSION}/site-packages:/opt/python:/var/runtime"
exec /usr/bin/python{PYTHON_VERSION} -m awslambdaric "${{_HANDLER:-$AWS_LAMBDA_FUNCTION_HANDLER}}"
"""
ENVIRONMENT = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "LANG": "C.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# Not needed at run time: package caches and lists, documentation, translations (about 140 MB).
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")


@dataclass(frozen=True)
class Architecture:
    lambda_name: str  # as in template.yaml Architectures and SAM's image tags
    debian: str  # debootstrap --arch
    wheel_platform: str  # pip --platform
    docker_platform: str
    binfmt: str | None  # binfmt_misc handler needed on an x86_64 machine, if any


ARCHITECTURES = {
    "arm64": Architecture("arm64", "arm64", "manylinux2014_aarch64", "linux/arm64", "qemu-aarch64"),
    "x86_64": Architecture("x86_64", "amd64", "manylinux2014_x86_64", "linux/amd64", None),
}


def image_tag(arch: str) -> str:
    return f"{REPOSITORY}:{PYTHON_VERSION}-{arch}"


def recipe_hash(arch: str) -> str:
    """What the image is made of: a change to any of it (not to this module's other code) rebuilds."""
    recipe = [RECIPE_VERSION, DEBIAN_SUITE, PYTHON_VERSION, arch, BOOTSTRAP, repr(ENVIRONMENT), repr(TRIM)]
    recipe.append(REQUIREMENTS.read_text())
    return hashlib.sha256("\n".join(recipe).encode()).hexdigest()[:16]


def docker_available() -> str | None:
    """None when a Docker daemon answers, else why not (for skip messages)."""
    if shutil.which("docker") is None:
        return "no docker command (apt-get install docker.io)"
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"the Docker daemon does not answer: {probe.stderr.strip()[-200:]}"
    return None


def built_recipe(arch: str) -> str | None:
    """The recipe label of the tagged image, None when there is no such image."""
    result = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            image_tag(arch),
            "--format",
            f'{{{{index .Config.Labels "{RECIPE_LABEL}"}}}}',
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def is_current(arch: str) -> bool:
    return built_recipe(arch) == recipe_hash(arch)


def emulation_missing(arch: str) -> str | None:
    """None when this machine can run the architecture's binaries, else how to make it able to."""
    handler = ARCHITECTURES[arch].binfmt
    if handler is None or os.uname().machine in {"aarch64", "arm64"}:
        return None
    if not Path("/proc/sys/fs/binfmt_misc", handler).exists():
        return (
            f"{arch} needs qemu user-mode emulation: apt-get install qemu-user-static binfmt-support "
            "(and `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc` if it is not mounted)"
        )
    return None


def _run(*args: str, **kwargs: object) -> None:
    subprocess.run(args, check=True, **kwargs)  # type: ignore[call-overload]


def build(arch: str, *, log: bool = True) -> float:
    """Build and tag the image; returns the seconds it took."""
    spec = ARCHITECTURES[arch]
    problem = docker_available() or emulation_missing(arch)
    if problem:
        raise SystemExit(problem)
    if shutil.which("debootstrap") is None:
        raise SystemExit("no debootstrap (apt-get install debootstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sam-base-", dir=os.environ.get("SAM_BASE_TMP")) as tmp:
        root = Path(tmp) / "rootfs"
        quiet = {} if log else {"stdout": subprocess.DEVNULL}
        _run(
            "nice", "-n", "10", "debootstrap", "--variant=minbase", f"--arch={spec.debian}", "--include=python3",
            DEBIAN_SUITE, str(root), DEBIAN_MIRROR, **quiet,
        )  # fmt: skip
        python = root / "usr" / "bin" / f"python{PYTHON_VERSION}"
        if not python.exists():
            raise SystemExit(f"Debian {DEBIAN_SUITE} did not install python{PYTHON_VERSION}")
        runtime = root / "var" / "runtime"
        _run(
            "nice", "-n", "10", sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-warn-conflicts", "--target", str(runtime), "--platform", spec.wheel_platform,
            "--implementation", "cp", "--python-version", PYTHON_VERSION, "--only-binary=:all:",
            "-r", str(REQUIREMENTS),
        )  # fmt: skip
        shutil.rmtree(runtime / "bin", ignore_errors=True)  # console scripts with the host's shebang
        # Bytecode for the image's own Python (pip compiled for the host's): a cold start then imports
        # boto3 instead of compiling it (0.9 s of every x86_64 cold start; ~45 s of an emulated arm64 one).
        _run("nice", "-n", "10", "chroot", str(root), f"/usr/bin/python{PYTHON_VERSION}", "-m", "compileall",
             "-q", "/var/runtime", stdout=subprocess.DEVNULL)  # fmt: skip
        bootstrap = runtime / "bootstrap"
        bootstrap.write_text(BOOTSTRAP)
        bootstrap.chmod(0o755)
        for folder in ("var/task", "opt"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for folder in TRIM:
            shutil.rmtree(root / folder, ignore_errors=True)
        package(arch, root, Path(tmp) / "context")
    return time.monotonic() - started


def dockerfile(arch: str) -> str:
    """The image from the root file system tarball: FROM scratch, so the image's platform is the
    architecture's (`docker import --platform` is ignored by Debian's Docker 20.10, and SAM's build of
    its emulator image on top refuses a base of another platform)."""
    lines = ["FROM scratch", "ADD rootfs.tar /"]
    lines += [f"ENV {k}={v}" for k, v in ENVIRONMENT.items()]
    lines += ["WORKDIR /var/task", 'ENTRYPOINT ["/var/runtime/bootstrap"]']
    lines += [f"LABEL {RECIPE_LABEL}={recipe_hash(arch)}"]
    return "\n".join(lines) + "\n"


def package(arch: str, root: Path, context: Path) -> None:
    """Tag the image made of the root file system `root`."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile(arch))
    _run("tar", "-C", str(root), "-cf", str(context / "rootfs.tar"), ".")
    platform = ARCHITECTURES[arch].docker_platform
    _run(
        "docker", "build", "--quiet", "--platform", platform, "--tag", image_tag(arch), str(context),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def ensure(arch: str) -> str:
    """Build the image unless an image from this recipe is already tagged; returns what was done."""
    if is_current(arch):
        return f"{image_tag(arch)} is current (recipe {recipe_hash(arch)})"
    seconds = build(arch)
    return f"built {image_tag(arch)} in {seconds:.0f} s (recipe {recipe_hash(arch)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ensure", "build", "tag"])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="arm64")
    args = parser.parse_args(argv)
    if args.command == "tag":
        print(image_tag(args.arch))
    elif args.command == "build":
        print(f"built {image_tag(args.arch)} in {build(args.arch):.0f} s")
    else:
        print(ensure(args.arch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
