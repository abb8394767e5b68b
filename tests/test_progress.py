"""Subgoal progress of OGBench's manipulation tasks: the share of the goal's subgoals satisfied when an episode ends."""

import gymnasium
import numpy as np
import pytest

from dipole.envs import make_env
from dipole.envs.ogbench import SubgoalProgress, subgoals_satisfied


@pytest.mark.parametrize("name, total", [("cube-double-play-singletask-task1-v0", 2),
                                         ("scene-play-singletask-task2-v0", 5),
                                         ("puzzle-3x3-play-singletask-task1-v0", 9)])
def test_progress_is_what_ogbench_reward_counts(name, total):
    """OGBench's single-task reward is `satisfied - total` subgoals after each step; the wrapper reports
    `satisfied / total` once, at the episode's end (here cut after 4 steps)."""
    env = make_env(name)
    assert isinstance(env, SubgoalProgress)
    short = SubgoalProgress(gymnasium.wrappers.TimeLimit(env.env, max_episode_steps=4))
    short.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(4):
        _, reward, terminated, truncated, info = short.step(rng.uniform(-1, 1, env.action_space.shape))
        satisfied, n = subgoals_satisfied(short)
        assert n == total and reward == satisfied - total
        assert ("episode_stats" in info) == (step == 3) and truncated == (step == 3) and not terminated
    assert info["episode_stats"]["progress"] == pytest.approx(1 + reward / total)
    short.close()


def test_evaluation_averages_progress_and_mazes_have_none():
    from dipole.runners.evaluation import run_episodes

    def act(obs, key):
        return np.zeros((obs.shape[0], 5), np.float32)

    res = run_episodes(act, "cube-single-play-singletask-task1-v0", episodes=1)
    # one cube: its one subgoal is the task, so the share at the end is the success (both 0 standing still)
    assert res["progress"] == res["success"] == 0.0
    assert not isinstance(make_env("pointmaze-medium-navigate-singletask-task1-v0"), SubgoalProgress)
