"""OGBench environments and the benchmark's names.

A dataset file is named like `pointmaze-medium-navigate-v0` (files `NAME.npz`, `NAME-val.npz`); a single-task RL
name inserts `-singletask[-taskK]` before the version, e.g. `pointmaze-medium-navigate-singletask-task1-v0`.
"""

from __future__ import annotations

import re

from dipole._quiet import env_warnings_off

_SINGLETASK = re.compile(r"^(?P<base>.+)-(?P<dtype>[a-z]+)-singletask(?P<task>-task\d+)?-(?P<ver>v\d+)$")


def is_ogbench_name(name: str) -> bool:
    return bool(_SINGLETASK.match(name)) or bool(re.match(r"^[a-z0-9]+-[a-z0-9-]+-v\d+$", name))


def parse_singletask_name(name: str) -> dict:
    """'cube-double-play-singletask-task2-v0' -> dataset 'cube-double-play-v0', env 'cube-double-singletask-task2-v0'."""
    m = _SINGLETASK.match(name)
    if not m:
        raise ValueError(
            f"{name!r} is not an OGBench single-task name; expected e.g. "
            "'pointmaze-medium-navigate-singletask-task1-v0' or 'cube-single-play-singletask-v0' (default task)."
        )
    base, dtype, task, ver = m.group("base"), m.group("dtype"), m.group("task") or "", m.group("ver")
    return {
        "dataset": f"{base}-{dtype}-{ver}",
        "env": f"{base}-singletask{task}-{ver}",
        "task": int(task[5:]) if task else None,
    }


def make_ogbench_env(name: str):
    """The evaluation environment of a single-task name (OGBench's own, made without loading any data)."""
    try:
        parse_singletask_name(name)
    except ValueError as e:
        raise ValueError(f"unknown environment {name!r}: {e}") from None
    import ogbench

    with env_warnings_off():
        return ogbench.make_env_and_datasets(name, env_only=True)
