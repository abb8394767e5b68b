"""DMC exploratory data as a training Dataset: each task's reward recomputed from the stored physics states."""

from __future__ import annotations

import os

import numpy as np

from dipole.data.dataset import Dataset, DatasetError
from dipole.envs.dmc import DMCEnv, make_dmc_env


def load_dmc(name: str, dataset_path: str, clip_actions: bool = False):
    """'dmc-walker-run' + a DOMAIN-explore.npz -> (env, Dataset) with that task's rewards recomputed from physics."""
    env = make_dmc_env(name)
    if not os.path.exists(dataset_path):
        raise FileNotFoundError(f"{dataset_path} not found; make it with `dipole data dmc {env.domain}`")
    raw = np.load(dataset_path)
    missing = [k for k in ("observations", "actions", "next_observations", "physics") if k not in raw.files]
    if missing:
        raise DatasetError(f"{dataset_path}: missing key(s) {missing}; expected a file from `dipole data dmc`.")
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
