"""OGBench datasets: the real loader (through `ogbench.make_env_and_datasets`) and local generation.

OGBench names: a dataset file is named like `pointmaze-medium-navigate-v0` (files `NAME.npz`, `NAME-val.npz`);
a single-task RL name inserts `-singletask[-taskK]` before the version, e.g.
`pointmaze-medium-navigate-singletask-task1-v0`, and OGBench relabels rewards (success - 1) and masks for it.
"""

from __future__ import annotations

import os
import re

from dipole.data.dataset import Dataset, DatasetError

DEFAULT_DATASET_DIR = "~/.ogbench/data"
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


def dataset_files(name: str, dataset_path: str | None = None, dataset_dir: str = DEFAULT_DATASET_DIR):
    """(train file, val file) that OGBench will read for this single-task name."""
    if dataset_path is not None:
        return dataset_path, dataset_path.replace(".npz", "-val.npz")
    base = parse_singletask_name(name)["dataset"]
    d = os.path.expanduser(dataset_dir)
    return os.path.join(d, f"{base}.npz"), os.path.join(d, f"{base}-val.npz")


def load_ogbench(
    name: str,
    dataset_path: str | None = None,
    dataset_dir: str = DEFAULT_DATASET_DIR,
    allow_download: bool = False,
    clip_actions: bool = False,
):
    """Load an OGBench single-task dataset -> (env, train Dataset, val Dataset).

    Uses `ogbench.make_env_and_datasets` itself, so rewards and masks are OGBench's own relabelling. Missing
    files are downloaded by OGBench only with allow_download=True; otherwise the error says how to make them.
    """
    import ogbench

    info = parse_singletask_name(name)
    train_file, val_file = dataset_files(name, dataset_path, dataset_dir)
    missing = [f for f in (train_file, val_file) if not os.path.exists(f)]
    if missing and not (allow_download and dataset_path is None):
        raise FileNotFoundError(
            f"OGBench dataset files not found: {missing}. Make them locally with "
            f"`dipole data ogbench {info['dataset']}` (writes to {DEFAULT_DATASET_DIR}), pass --dataset PATH to an "
            "existing NAME.npz (with NAME-val.npz beside it), or allow OGBench's download with --download."
        )
    kwargs = {"dataset_path": dataset_path} if dataset_path is not None else {"dataset_dir": dataset_dir}
    try:
        env, train, val = ogbench.make_env_and_datasets(name, **kwargs)
    except KeyError as e:
        raise DatasetError(f"{train_file}: the npz file lacks key {e}; OGBench files hold observations, actions, "
                           "terminals, qpos, qvel (and button_states for scene/puzzle).") from None
    obs_shape = env.observation_space.shape
    action_dim = env.action_space.shape[0]
    train_ds = Dataset(train, name=train_file, clip_actions=clip_actions, obs_shape=obs_shape, action_dim=action_dim)
    val_ds = Dataset(val, name=val_file, clip_actions=clip_actions, obs_shape=obs_shape, action_dim=action_dim)
    return env, train_ds, val_ds
