"""`make bench`: runs every tests/bench/bench_*.py and writes BENCHMARKS.md (never part of make test).

Each module defines `run() -> list[Figure]`; every figure is measured together with its baseline in
the same run, on this machine. A module may also define `notes() -> list[str]` (prose on how it
measured, called after `run()`), rendered under its figures.

`python -m tests.bench.run core outreach` runs only bench_core.py and bench_outreach.py and prints
the result without writing BENCHMARKS.md (a partial file would drop the other figures).
"""

from __future__ import annotations

import importlib
import os
import pickle
import platform
import subprocess
import sys
import tempfile
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
    # Whether the goal holds (None: no goal, or not a yes/no one); rendered next to the goal.
    goal_met: bool | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def _load() -> str:
    try:
        return ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _goal(figure: Figure) -> str:
    if figure.goal_met is None:
        return figure.goal
    return f"{figure.goal} {'(met)' if figure.goal_met else '(NOT met)'}"


def _sources(sections: dict[str, list[str]]) -> list[str]:
    """Which module measured what, and which destinations have no API-call benchmark of their own."""
    lines = ["## Where the figures come from", ""]
    for module, names in sections.items():
        lines.append(
            f"- `tests/bench/{module}` (`python -m tests.bench.{module.removesuffix('.py')}`): {', '.join(names)}"
        )
    destinations = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
    missing = [d for d in destinations if not (Path(__file__).parent / f"bench_{d}.py").exists()]
    lines.append(
        "- API calls per 10,000 records per destination: each destination's `tests/bench/bench_<type>.py`"
        + (f"; none yet for {', '.join(missing)}" if missing else "")
        + " (RainFocus's is in bench_core.py while it has no module of its own)."
    )
    lines.append("")
    return lines


def render(
    figures: list[Figure],
    seconds: float,
    notes: dict[str, list[str]] | None = None,
    load: tuple[str, str] = ("", ""),
    sections: dict[str, list[str]] | None = None,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` ({time.strftime('%Y-%m-%d')}, {seconds:.0f} s). Machine: {_machine()}.",
        "Each figure and its baseline were measured in the same run; ratio = ours / baseline.",
        "",
        "The machine is shared: other engineers run their test suites on the same 2 cores while this runs"
        f" (load average at start {load[0] or _load()}, at the end {load[1] or _load()}). Absolute times"
        " are therefore pessimistic and noisy; ratios are meaningful because each baseline ran in the same"
        " minutes, interleaved where the figure is a timing. CPU-time figures exclude time spent waiting"
        " for a core.",
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
                f"| {f.ratio:.2f} | {_goal(f)} | `{f.command}` |"
            )
        lines.append("")
    judged = [f for f in figures if f.goal_met is not None]
    missed = [f for f in judged if not f.goal_met]
    if judged:
        lines += ["## Goals", "", f"{len(judged) - len(missed)} of {len(judged)} yes/no goals met."]
    if missed:
        lines += ["", "Not met (why: see the notes below):", ""]
        lines += [
            f"- {f.section}: {f.name}: {f.ours:,.2f} {f.unit} vs {f.baseline:,.2f} {f.unit}, ratio "
            f"{f.ratio:.2f}; goal {f.goal}"
            for f in missed
        ]
    if judged:
        lines.append("")
    if sections:
        lines += _sources(sections)
    if notes:
        lines += ["## Notes", ""]
        for module, texts in notes.items():
            lines += [f"- `{module}`: {text}" for text in texts]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    only = {f"bench_{name.removeprefix('bench_')}" for name in (sys.argv[1:] if argv is None else argv)}
    started, load_at_start = time.monotonic(), _load()
    figures: list[Figure] = []
    notes: dict[str, list[str]] = {}
    sections: dict[str, list[str]] = {}
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        print(f"running {path.stem} ...", flush=True)
        produced, module_notes = _in_own_process(path.stem)
        figures.extend(produced)
        sections[path.name] = list(dict.fromkeys(f.section for f in produced))
        notes[path.name] = module_notes
    text = render(figures, time.monotonic() - started, notes, (load_at_start, _load()), sections)
    if not only:
        (ROOT / "BENCHMARKS.md").write_text(text)
    print(text)
    return 0


def _in_own_process(stem: str) -> tuple[list[Figure], list[str]]:
    """One bench module in a fresh interpreter, as each function runs in its own Lambda process: a
    module's figures are not measured in a heap (and a garbage collector's work) the modules before it
    left behind (the SFMC page task measured 40,515 rows per CPU second after the others in one
    process, 51,224 alone, the same minutes)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.pickle"
        subprocess.run([sys.executable, "-m", "tests.bench.run", _ONE, stem, str(out)], cwd=ROOT, check=True)
        produced, module_notes = pickle.loads(out.read_bytes())  # noqa: S301 - written by this run's child
    return produced, module_notes


_ONE = "--one-module"


def _one_module(stem: str, out: Path) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "activation_core"), str(ROOT / "functions")]
    module = importlib.import_module(f"tests.bench.{stem}")
    started = time.monotonic()
    produced = module.run()
    module_notes = [*getattr(module, "notes", list)(), f"ran in {time.monotonic() - started:.0f} s."]
    out.write_bytes(pickle.dumps((produced, module_notes)))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [_ONE]:
        raise SystemExit(_one_module(sys.argv[2], Path(sys.argv[3])))
    raise SystemExit(main())
