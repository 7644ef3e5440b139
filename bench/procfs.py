"""CPU time and memory of processes and process trees, from /proc (and getrusage for our own)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of /proc/<pid>/stat; None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def _ticks(fields: list[str]) -> int:
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of /proc/<pid>/stat)


def _all_pids() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def tree_pids(root: int) -> list[int]:
    """root and all its descendants, from /proc/<pid>/stat's ppid field."""
    children: dict[int, list[int]] = {}
    for entry in _all_pids():
        stat = _stat(entry)
        if stat is not None:
            children.setdefault(int(stat[1][1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of a process tree (all threads included), from /proc/<pid>/stat."""
    ticks = 0
    for pid in tree_pids(root):
        stat = _stat(pid)
        if stat is not None:
            ticks += _ticks(stat[1])
    return ticks / CLK_TCK


def all_cpu_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime ticks) for every process."""
    out = {}
    for entry in _all_pids():
        stat = _stat(entry)
        if stat is not None:
            out[int(entry)] = (stat[0], _ticks(stat[1]))
    return out


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (sum(cpu[:8]) - cpu[3] - cpu[4]) / CLK_TCK


def own_cpu_seconds() -> float:
    """CPU of this process and its reaped children (wrk, or the Python load loop)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def status_kib(pid: int, key: str) -> int:
    """A kB figure of /proc/<pid>/status (VmHWM, VmRSS, ...); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_status_kib(root: int, key: str) -> dict[str, int]:
    """{"master": root's figure, "<pid>": each descendant's, by pid}."""
    out = {"master": status_kib(root, key)}
    for pid in sorted(p for p in tree_pids(root) if p != root):
        out[str(pid)] = status_kib(pid, key)
    return out
