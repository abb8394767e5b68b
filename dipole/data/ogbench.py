"""OGBench datasets through OGBench's own loader (`ogbench.make_env_and_datasets`), which relabels rewards
(success - 1) and masks for single-task names. Local generation in OGBench's format: `dipole.datagen.ogbench`."""

from __future__ import annotations

import os

from dipole._quiet import env_warnings_off
from dipole.data.dataset import Dataset, DatasetError
from dipole.envs.ogbench import parse_singletask_name

DEFAULT_DATASET_DIR = "~/.ogbench/data"


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
        with env_warnings_off():
            env, train, val = ogbench.make_env_and_datasets(name, **kwargs)
    except KeyError as e:
        raise DatasetError(f"{train_file}: the npz file lacks key {e}; OGBench files hold observations, actions, "
                           "terminals, qpos, qvel (and button_states for scene/puzzle).") from None
    obs_shape = env.observation_space.shape
    action_dim = env.action_space.shape[0]
    train_ds = Dataset(train, name=train_file, clip_actions=clip_actions, obs_shape=obs_shape, action_dim=action_dim)
    val_ds = Dataset(val, name=val_file, clip_actions=clip_actions, obs_shape=obs_shape, action_dim=action_dim)
    return env, train_ds, val_ds
