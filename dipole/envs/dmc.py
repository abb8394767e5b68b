"""DeepMind Control tasks as gymnasium-style environments: flat float32 observations, actions in [-1, 1].

Names: `dmc-DOMAIN-TASK`, e.g. `dmc-walker-run`, `dmc-cheetah-run_backward` (URLB/ExORL's backward run).
"""

from __future__ import annotations

import numpy as np

from dipole.errors import UsageError

DOMAINS = {
    "walker": ("stand", "walk", "run"),
    "cheetah": ("run", "run_backward"),
    "quadruped": ("walk", "run"),
}
EPISODE_STEPS = 1000  # DMC episode length used for evaluation


def _load(domain: str, task: str, seed: int | None = None):
    from dm_control import suite

    if domain not in DOMAINS or task not in DOMAINS[domain]:
        raise UsageError(f"unknown DMC task {domain}-{task}; available: "
                         f"{[f'{d}-{t}' for d, ts in DOMAINS.items() for t in ts]}")
    suite_task = "run" if task == "run_backward" else task
    return suite.load(domain, suite_task, task_kwargs={"random": seed})


def task_reward(domain: str, task: str, physics) -> float:
    """The task's reward in the current physics state; cheetah run_backward as URLB/ExORL define it."""
    if domain == "cheetah" and task == "run_backward":
        from dm_control.utils import rewards

        return float(rewards.tolerance(-physics.speed(), bounds=(10.0, float("inf")), margin=10.0,
                                       value_at_margin=0, sigmoid="linear"))
    raise KeyError(task)


def flatten_obs(obs: dict) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(v, np.float32)) for v in obs.values()])


def action_scaler(env):
    """Map actions in [-1, 1] linearly onto the actuators' own ranges (quadruped's are not [-1, 1])."""
    spec = env.action_spec()
    low, high = np.asarray(spec.minimum, np.float64), np.asarray(spec.maximum, np.float64)
    return lambda a: low + (np.asarray(a, np.float64) + 1.0) * 0.5 * (high - low)


class DMCEnv:
    """gymnasium-style wrapper: flattened float32 observations, actions in [-1, 1] (rescaled to the actuators'
    ranges), 1000-step episodes."""

    def __init__(self, domain: str, task: str, seed: int | None = None):
        import gymnasium

        self.domain, self.task = domain, task
        self._env = _load(domain, task, seed)
        spec = self._env.action_spec()
        self._scale = action_scaler(self._env)
        obs_dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, spec.shape, np.float32)

    @property
    def physics(self):
        return self._env.physics

    def reward(self) -> float:
        if self.domain == "cheetah" and self.task == "run_backward":
            return task_reward(self.domain, self.task, self.physics)
        return float(self._env.task.get_reward(self.physics))

    def reset(self, seed: int | None = None):
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)
        ts = self._env.reset()
        return flatten_obs(ts.observation), {}

    def step(self, action):
        action = np.asarray(action, np.float64)
        if action.shape != self.action_space.shape or not np.all(np.abs(action) <= 1.0 + 1e-6):
            raise UsageError(f"action must have shape {self.action_space.shape} with entries in [-1, 1]")
        ts = self._env.step(self._scale(action))
        reward = self.reward() if self.task == "run_backward" else float(ts.reward)
        return flatten_obs(ts.observation), reward, False, ts.last(), {}

    def close(self):
        pass


def make_dmc_env(name: str):
    """'dmc-walker-walk' -> DMCEnv('walker', 'walk'); 'dmc-cheetah-run_backward' likewise."""
    parts = name.split("-", 2)
    if len(parts) < 3:
        raise UsageError(f"unknown DMC task {name!r}: write dmc-DOMAIN-TASK, one of "
                         f"{[f'dmc-{d}-{t}' for d, ts in DOMAINS.items() for t in ts]}")
    _, domain, task = parts
    return DMCEnv(domain, task.replace("-", "_"))
