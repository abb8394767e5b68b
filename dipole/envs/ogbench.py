"""OGBench environments and the benchmark's names.

A dataset file is named like `pointmaze-medium-navigate-v0` (files `NAME.npz`, `NAME-val.npz`); a single-task RL
name inserts `-singletask[-taskK]` before the version, e.g. `pointmaze-medium-navigate-singletask-task1-v0`.
Names are checked against the environments the installed ogbench registers (families and task numbers), so an
unknown one is refused here in one line instead of by gymnasium's NameNotFound.
"""

from __future__ import annotations

import functools
import re

import gymnasium

from dipole.errors import UsageError

_SINGLETASK = re.compile(r"^(?P<base>.+)-(?P<dtype>[a-z]+)-singletask(?P<task>-task\d+)?-(?P<ver>v\d+)$")
_REGISTERED_SINGLETASK = re.compile(r"^(?P<env>.+)-singletask(?:-task(?P<task>\d+))?-(?P<ver>v\d+)$")
_DATASET_NAME = re.compile(r"^(?P<env>[a-z0-9][a-z0-9-]*)-(?P<dtype>[a-z]+)-(?P<ver>v\d+)$")


def is_ogbench_name(name: str) -> bool:
    return bool(_SINGLETASK.match(name)) or bool(re.match(r"^[a-z0-9]+-[a-z0-9-]+-v\d+$", name))


@functools.lru_cache(maxsize=1)
def _registry() -> tuple[dict, frozenset]:
    """({'pointmaze-medium-v0': sorted task numbers}, all registered env ids) of the installed ogbench."""
    import gymnasium
    import ogbench  # noqa: F401  (registers its environments)

    tasks: dict[str, set] = {}
    for env_id in gymnasium.registry:
        m = _REGISTERED_SINGLETASK.match(env_id)
        if m:
            family = f"{m.group('env')}-{m.group('ver')}"
            tasks.setdefault(family, set())
            if m.group("task"):
                tasks[family].add(int(m.group("task")))
    return {k: sorted(v) for k, v in tasks.items()}, frozenset(gymnasium.registry)


def _task_range(tasks: list) -> str:
    if tasks and tasks == list(range(tasks[0], tasks[-1] + 1)):
        return f"{tasks[0]}..{tasks[-1]}"
    return ", ".join(map(str, tasks))


def parse_singletask_name(name: str, check: bool = True) -> dict:
    """'cube-double-play-singletask-task2-v0' -> dataset 'cube-double-play-v0', env 'cube-double-singletask-task2-v0'.

    With check=True (the default) the environment family and task number must be ones the installed ogbench
    registers; otherwise a UsageError names the valid ones.
    """
    m = _SINGLETASK.match(name)
    if not m:
        raise UsageError(
            f"{name!r} is not an OGBench single-task name; expected e.g. "
            "'pointmaze-medium-navigate-singletask-task1-v0' or 'cube-single-play-singletask-v0' (default task)."
        )
    base, dtype, task, ver = m.group("base"), m.group("dtype"), m.group("task") or "", m.group("ver")
    info = {
        "dataset": f"{base}-{dtype}-{ver}",
        "env": f"{base}-singletask{task}-{ver}",
        "task": int(task[5:]) if task else None,
    }
    if check:
        tasks, registered = _registry()
        family = f"{base}-{ver}"
        if family not in tasks:
            known = sorted({f.rsplit("-", 1)[0] for f in tasks if not f.startswith("visual-")})
            raise UsageError(
                f"{name!r}: OGBench has no single-task environment {base!r} ({ver}); the installed ogbench has "
                f"{', '.join(known)} (and visual-* variants). Name one of them with its dataset type, e.g. "
                f"'pointmaze-medium-navigate-singletask-task1-v0'."
            )
        if info["env"] not in registered:
            valid = tasks[family]
            raise UsageError(
                f"{name!r}: {base} has no task {info['task']}; OGBench single-task environments of {base} have tasks "
                f"{_task_range(valid)}: use e.g. '{base}-{dtype}-singletask-task{valid[0]}-{ver}', or drop "
                f"'-taskK' for the default task."
            )
    return info


def dataset_name_of_file(basename: str) -> str | None:
    """The OGBench dataset name a file is named after ('pointmaze-large-navigate-v0' for
    'pointmaze-large-navigate-v0.npz' or '...-val.npz'), or None when the name is not an OGBench dataset's: its
    environment part ('pointmaze-large-v0') must be an environment the installed ogbench registers."""
    stem = basename.removesuffix(".npz").removesuffix("-val")
    m = _DATASET_NAME.match(stem)
    if not m:
        return None
    _, registered = _registry()
    return stem if f"{m.group('env')}-{m.group('ver')}" in registered else None


def make_ogbench_env(name: str):
    """The evaluation environment of a single-task name (OGBench's own, made without loading any data)."""
    try:
        parse_singletask_name(name)
    except UsageError as e:
        raise UsageError(f"unknown environment: {e}") from None
    import ogbench

    env = ogbench.make_env_and_datasets(name, env_only=True)
    return SubgoalProgress(env) if hasattr(env.unwrapped, "_compute_successes") else env


def _flat(successes) -> list:
    out = []
    for s in successes:
        out += _flat(s) if isinstance(s, (list, tuple)) else [bool(s)]
    return out


def subgoals_satisfied(env) -> tuple[int, int]:
    """(satisfied, total) subgoals of a manipulation task's goal now (cubes placed, buttons, drawer, window): what
    OGBench's single-task reward counts, as `satisfied - total`."""
    flat = _flat(env.unwrapped._compute_successes())
    return sum(flat), len(flat)


class SubgoalProgress(gymnasium.Wrapper):
    """A manipulation environment (cube, scene, puzzle) that reports, when an episode ends, the share of its goal's
    subgoals satisfied in the final state as `info['episode_stats']['progress']` (1 when the task is solved): a
    continuous measure beside success, which evaluation averages over episodes."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            satisfied, total = subgoals_satisfied(self.env)
            info = {**info, "episode_stats": {**info.get("episode_stats", {}), "progress": satisfied / total}}
        return obs, reward, terminated, truncated, info
