"""`make bench`: runs every tests/bench/bench_*.py and writes BENCHMARKS.md (never part of make test).

Each module defines `run() -> list[Figure]`; every figure is measured together with its baseline in
the same run, on this machine.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Figure:
    section: str
    name: str
    ours: float
    baseline: float
    baseline_name: str
    unit: str
    command: str
    goal: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def _machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def render(figures: list[Figure], seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` ({time.strftime('%Y-%m-%d')}, {seconds:.0f} s). Machine: {_machine()}.",
        "Each figure and its baseline were measured in the same run; ratio = ours / baseline.",
        "",
    ]
    for section in dict.fromkeys(f.section for f in figures):
        lines += [
            f"## {section}",
            "",
            "| figure | ours | baseline | ratio | goal | command |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for f in (f for f in figures if f.section == section):
            lines.append(
                f"| {f.name} | {f.ours:,.2f} {f.unit} | {f.baseline:,.2f} {f.unit} ({f.baseline_name}) "
                f"| {f.ratio:.2f} | {f.goal} | `{f.command}` |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    started = time.monotonic()
    figures: list[Figure] = []
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        module = importlib.import_module(f"tests.bench.{path.stem}")
        print(f"running {path.stem} ...", flush=True)
        figures.extend(module.run())
    text = render(figures, time.monotonic() - started)
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
