"""CPU time of a server process tree, for the benchmarks' per-request CPU figures (steadier
than requests/s on a shared machine)."""

from __future__ import annotations

import os
from pathlib import Path


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by a gunicorn master and its workers (from /proc), including
    workers that gunicorn already replaced (max_requests): their time is in the master's
    cutime/cstime once reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        master = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    total += (int(master[13]) + int(master[14])) / tick  # cutime + cstime: reaped workers
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return float("nan")
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total
