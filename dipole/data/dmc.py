"""DMC exploratory data as a training Dataset: each task's reward recomputed from the stored physics states."""

from __future__ import annotations

import numpy as np

from dipole.data.dataset import (
    Dataset,
    DatasetError,
    check_finite,
    check_same_rows,
    read_npz,
)
from dipole.envs.dmc import DMCEnv, make_dmc_env


def load_dmc(name: str, dataset_path: str, clip_actions: bool = False):
    """'dmc-walker-run' + a DOMAIN-explore.npz -> (env, Dataset) with that task's rewards recomputed from physics."""
    env = make_dmc_env(name)
    needed = ("observations", "actions", "next_observations", "physics")
    raw = read_npz(dataset_path, "DMC dataset", f"dipole data dmc {env.domain}")
    missing = [k for k in needed if k not in raw]
    if missing:
        raise DatasetError(f"{dataset_path}: missing key(s) {missing}; expected a file from "
                           f"`dipole data dmc {env.domain}`.")
    check_same_rows(raw, needed, dataset_path)
    check_finite(raw, ("physics",), dataset_path)
    if raw["physics"].ndim != 2 or raw["physics"].shape[1] != len(env.physics.get_state()):
        raise DatasetError(f"{dataset_path}: field 'physics' rows have shape {raw['physics'].shape[1:]} but "
                           f"{name}'s physics state has {len(env.physics.get_state())} numbers: the file is from "
                           f"another domain; make one with `dipole data dmc {env.domain}`.")
    rewards = relabel(env, raw["physics"])
    arrays = {"observations": raw["observations"], "actions": raw["actions"], "rewards": rewards,
              "masks": np.ones(len(rewards), np.float32), "next_observations": raw["next_observations"]}
    return env, Dataset(arrays, name=dataset_path, clip_actions=clip_actions, obs_shape=env.observation_space.shape,
                        action_dim=env.action_space.shape[0])


def relabel(env: DMCEnv, states: np.ndarray) -> np.ndarray:
    """Reward of env's task in each physics state, as the environment computes it after a step."""
    physics = env.physics
    out = np.empty(len(states), np.float32)
    for i, s in enumerate(states):
        with physics.reset_context():
            physics.set_state(s)
        out[i] = env.reward()
    return out
