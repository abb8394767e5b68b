"""Highway benchmark pieces that need both the scripted drivers and the evaluation loop."""

from __future__ import annotations

import numpy as np

from dipole.datagen.highway import Driver, driver_action
from dipole.envs.highway import HighwayDriving
from dipole.runners.evaluation import run_episodes


def evaluate_driver(driver: Driver, env_name: str, episodes: int, seed: int = 0, num_envs: int = 16) -> dict:
    """A scripted driver under the same evaluation as the agents (same seeds, same stats)."""
    envs = [HighwayDriving(env_name) for _ in range(min(episodes, num_envs))]
    states = [{} for _ in envs]
    rng = np.random.default_rng(seed)

    def act(obs, _key):
        return np.stack([driver_action(driver, e, s, rng) if e.vehicle is not None else np.zeros(2, np.float32)
                         for e, s in zip(envs, states)])

    out = run_episodes(act, env_name, episodes, seed=seed, envs=envs)
    out["driver"] = driver.name
    return out


def failure(row: dict) -> float:
    """Share of episodes ended by a crash or by leaving the road (rows older than the `failure` field: the sum of the
    two rates, capped at 1)."""
    return row.get("failure", min(1.0, row["collision"] + row["offroad"]))
