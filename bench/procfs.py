"""What the benchmarks read from Linux's /proc: one place to parse its two per-process files."""

from __future__ import annotations

from pathlib import Path


def status_mib(pid: int | str, *fields: str) -> dict[str, float]:
    """The named size fields of /proc/<pid>/status (``VmRSS``, ``VmHWM``, ``RssAnon``, ...) in MiB,
    the kernel's kB / 1024; a field the kernel does not report is left out. ``pid`` may be "self"."""
    wanted = set(fields)
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in wanted:
            out[key] = int(rest.split()[0]) / 1024
    return out


def stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat's fields from the third on (state, ppid, ...): the command name before them
    may hold spaces and parentheses, so the line is split after its last ")". Index i is field i + 3
    of proc(5): utime is [11], stime [12], majflt [9]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
