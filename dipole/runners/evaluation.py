"""Evaluation: run episodes in a batch of environments with one policy call per step for all of them."""

from __future__ import annotations

import numpy as np

from dipole.envs import make_env
from dipole.seeding import stream_key, stream_seed

MAX_EVAL_ENVS = 16  # environments stepped together in one batch of evaluation episodes


def make_eval_envs(env_name: str, episodes: int, limit: int | None = None) -> list:
    """The environments an evaluation of `episodes` episodes steps together (at most `limit`, default 16)."""
    return [make_env(env_name) for _ in range(min(episodes, limit or MAX_EVAL_ENVS))]


def run_episodes(
    act_fn,
    env_name: str,
    episodes: int,
    seed: int = 0,
    num_envs: int | None = None,
    envs: list | None = None,
) -> dict:
    """Run `episodes` episodes; act_fn(obs (E, D), step_key int) -> actions (E, A) in [-1, 1].

    Environments step in lockstep; finished ones are fed their last observation (ignored) so the policy
    always sees the same batch shape and compiles once. Returns per-episode arrays and their means/stds.
    """

    import jax

    envs = envs or make_eval_envs(env_name, episodes, num_envs)
    num_envs = len(envs)
    returns, successes, lengths = [], [], []
    stats = {}  # per-episode statistics an env reports in info['episode_stats'] at the end (e.g. highway terms)
    has_success = False
    np.random.seed(stream_seed(seed, "eval"))  # OGBench resets draw their noise from numpy's global RNG
    key = stream_key(seed, "eval")
    next_episode = 0
    while next_episode < episodes:
        batch = min(num_envs, episodes - next_episode)
        obs = []
        for i in range(num_envs):
            o, _ = envs[i].reset(seed=stream_seed(seed, "eval", next_episode + i))
            obs.append(o)
        obs = np.stack(obs).astype(np.float32)
        active = np.arange(num_envs) < batch
        ep_ret = np.zeros(num_envs)
        ep_len = np.zeros(num_envs, int)
        ep_succ = np.zeros(num_envs)
        while active.any():
            key, sub = jax.random.split(key)
            actions = np.asarray(act_fn(obs, sub))
            for i in np.nonzero(active)[0]:
                o, r, term, trunc, info = envs[i].step(actions[i])
                obs[i] = o
                ep_ret[i] += r
                ep_len[i] += 1
                if "success" in info:
                    has_success = True
                    ep_succ[i] = float(info["success"])
                if term or trunc:
                    active[i] = False
                    for k, v in info.get("episode_stats", {}).items():
                        stats.setdefault(k, []).append(float(v))
        returns += list(ep_ret[:batch])
        successes += list(ep_succ[:batch])
        lengths += list(ep_len[:batch])
        next_episode += batch
    returns, successes, lengths = map(np.asarray, (returns, successes, lengths))
    return {
        "episodes": episodes,
        # tasks without a success signal (DMC) report None rather than a 0% that means nothing
        "success": float(successes.mean()) if has_success else None,
        "success_std": float(successes.std()) if has_success else None,
        "return": float(returns.mean()),
        "return_std": float(returns.std()),
        "length": float(lengths.mean()),
        **{k: float(np.mean(v)) for k, v in stats.items()},
    }


def evaluate_agent(agent, env_name, episodes, omega=None, num_candidates=None, seed=0, envs=None, num_envs=None):
    """Evaluate a flow agent at a given greediness and number of rejection-sampling candidates."""

    def act(obs, key):
        return agent.sample_actions(obs, key, omega=omega, num_candidates=num_candidates)

    out = run_episodes(act, env_name, episodes, seed=seed, envs=envs, num_envs=num_envs)
    default_omega = getattr(agent.config, "omega", None)
    out["omega"] = (None if default_omega is None else float(default_omega)) if omega is None else float(omega)
    out["num_candidates"] = int(getattr(agent.config, "num_candidates", 1) if num_candidates is None else num_candidates)
    return out


def omega_sweep(agent, env_name, omegas, candidates, episodes, seed=0, progress=None) -> list[dict]:
    """One evaluation per (omega, num_candidates); each row is reported separately, never maximised over."""
    envs = make_eval_envs(env_name, episodes)
    rows = []
    for k in candidates:
        for w in omegas:
            rows.append(evaluate_agent(agent, env_name, episodes, omega=w, num_candidates=k, seed=seed, envs=envs))
            if progress:
                progress(rows[-1])
    return rows
