"""Run one benchmark against two versions of the code, side by side, and print the medians.

    python bench/compare.py --against 982028f [--new REF] [--runs 3] bench/core.py [-- ARGS]

Each REF is checked out into a temporary `git worktree` (the new side defaults to this
checkout's working tree). Both sides are measured by the same benchmark script (this
checkout's) with the same virtual environment: the script imports the code under test from
CLUBSTACK_BENCH_SRC, so a side needs no venv of its own as long as its dependencies are the
ones installed here. Runs alternate old/new (new first on every second run) so that a shared
machine's changing load hits both alike; the figures are medians of the runs, and the load
average is printed before and after each. Arguments after `--` go to the benchmark, which
must accept `--json FILE` (bench/core.py and bench/drop.py do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def checkout(ref: str, folder: Path) -> Path:
    """A detached worktree of `ref` in `folder`; its src/ is what gets measured."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref],
        check=True,
        capture_output=True,
    )
    return folder / "src"


def remove(folder: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
        check=False,
        capture_output=True,
    )


def flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """{"paths": {"/": {"ratio": 0.7}}} -> {"paths./.ratio": 0.7}: numbers only."""
    if isinstance(data, dict):
        out: dict[str, float] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, int | float) and not isinstance(data, bool):
        return {prefix.rstrip("."): float(data)}
    return {}


def run_once(script: Path, src: Path, args: list[str], workdir: Path) -> dict[str, float]:
    out = workdir / "result.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "CLUBSTACK_BENCH_SRC": str(src)}
    subprocess.run(
        [sys.executable, str(script), "--json", str(out), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=3600,
    )
    data = json.loads(out.read_text())
    data.pop("load", None)
    return flatten(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", type=Path, help="The benchmark, e.g. bench/drop.py.")
    parser.add_argument("--against", required=True, help="The old ref, e.g. 982028f.")
    parser.add_argument("--new", help="The new ref (default: this working tree).")
    parser.add_argument("--runs", type=int, default=3, help="Runs per side.")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then the bench's own.")
    args = parser.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"]
    script = args.script.resolve()
    # Stopped with SIGTERM, still remove the worktrees (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    workdir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    folders = []
    try:
        sides = {"old": checkout(args.against, workdir / "old")}
        folders.append(workdir / "old")
        if args.new:
            sides["new"] = checkout(args.new, workdir / "new")
            folders.append(workdir / "new")
        else:
            sides["new"] = ROOT / "src"
        results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        loads = []
        for run in range(args.runs):
            order = ["old", "new"] if run % 2 == 0 else ["new", "old"]
            for side in order:
                before = os.getloadavg()[0]
                results[side].append(run_once(script, sides[side], bench_args, workdir))
                loads.append((before, os.getloadavg()[0]))
                print(
                    f"run {run + 1}/{args.runs} {side} done (load average {before:.1f} -> "
                    f"{loads[-1][1]:.1f})",
                    flush=True,
                )
    finally:
        for folder in folders:
            remove(folder)
        shutil.rmtree(workdir, ignore_errors=True)

    new_label = args.new or "working tree"
    print(
        f"\n{script.name}: medians of {args.runs} runs per side, alternating; "
        f"old = {args.against}, new = {new_label}; bench args: {' '.join(bench_args) or '-'}"
    )
    print(f"{'measure':44}{'old':>11}{'new':>11}{'new/old':>9}")
    for key in results["old"][0]:
        old = statistics.median(r[key] for r in results["old"] if key in r)
        news = [r[key] for r in results["new"] if key in r]
        if not news:
            continue
        new = statistics.median(news)
        ratio = f"{new / old:9.2f}" if old else f"{'':9}"
        print(f"{key:44}{old:11.2f}{new:11.2f}{ratio}")
    for key in results["new"][0].keys() - results["old"][0].keys():
        print(f"{key:44}{'':11}{statistics.median(r[key] for r in results['new']):11.2f}")
    seen = [value for pair in loads for value in pair]
    print(f"load average (1 min) during the runs: {min(seen):.1f} to {max(seen):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
