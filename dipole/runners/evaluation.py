"""Evaluation: run episodes in a batch of environments with one policy call per step for all of them."""

from __future__ import annotations

import functools

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
    """Run `episodes` episodes; act_fn(obs (E, D), step_key) -> actions (E, A) in [-1, 1].

    Environments step in lockstep; finished ones are fed their last observation (ignored) so the policy
    always sees the same batch shape and compiles once. Returns per-episode arrays and their means/stds.
    """
    envs = envs or make_eval_envs(env_name, episodes, num_envs)
    group_act = lambda obs, keys: np.asarray(act_fn(obs[0], keys[0]))[None]  # noqa: E731
    return run_group_episodes(group_act, [envs], episodes, [seed])[0]


@functools.cache
def _split_keys():
    """One compiled split of every member's key (made once per process, not per evaluation)."""
    import jax

    return jax.jit(jax.vmap(jax.random.split))


def run_group_episodes(act_fn, envs: list[list], episodes: int, seeds: list[int]) -> list[dict]:
    """Episodes of several policies at once (a population's members): member m runs `episodes` episodes in its
    own environments `envs[m]` (all members the same number E of them) with seed `seeds[m]`, and every step's
    actions come from one call act_fn(obs (M, E, D), keys (M, 2)) -> (M, E, A).

    Member m sees exactly the resets, evaluation keys and episode order it would see evaluated alone
    (`run_episodes` is this function with one member). Returns one result dict per member.
    """
    import jax

    members, num_envs = len(envs), len(envs[0])
    if any(len(e) != num_envs for e in envs):
        raise ValueError("every member needs the same number of evaluation environments")
    returns = [[] for _ in range(members)]
    successes = [[] for _ in range(members)]
    lengths = [[] for _ in range(members)]
    stats = [{} for _ in range(members)]  # statistics an env reports in info['episode_stats'] at the end
    has_success = [False] * members
    # numpy's global RNG (OGBench's mazes draw reset noise from it): each member keeps its own state, seeded as a
    # single evaluation seeds it, and draws from it in the order it would alone
    rng_states = []
    for s in seeds:
        np.random.seed(stream_seed(s, "eval"))
        rng_states.append(np.random.get_state())
    keys = jax.numpy.stack([stream_key(s, "eval") for s in seeds])
    next_episode = 0
    while next_episode < episodes:
        batch = min(num_envs, episodes - next_episode)
        obs = []
        for m in range(members):
            np.random.set_state(rng_states[m])
            obs.append(np.stack([envs[m][i].reset(seed=stream_seed(seeds[m], "eval", next_episode + i))[0]
                                 for i in range(num_envs)]))
            rng_states[m] = np.random.get_state()
        obs = np.stack(obs).astype(np.float32)
        active = np.zeros((members, num_envs), bool)
        active[:, :batch] = True
        ep_ret = np.zeros((members, num_envs))
        ep_len = np.zeros((members, num_envs), int)
        ep_succ = np.zeros((members, num_envs))
        while active.any():
            live = active.any(axis=1)
            both = _split_keys()(keys)
            # a member's key advances only while it has an episode running, as it would alone
            keys = jax.numpy.where(live[:, None], both[:, 0], keys)
            actions = np.asarray(act_fn(obs, both[:, 1]))
            for m in np.nonzero(live)[0]:
                np.random.set_state(rng_states[m])
                for i in np.nonzero(active[m])[0]:
                    o, r, term, trunc, info = envs[m][i].step(actions[m, i])
                    obs[m, i] = o
                    ep_ret[m, i] += r
                    ep_len[m, i] += 1
                    if "success" in info:
                        has_success[m] = True
                        ep_succ[m, i] = float(info["success"])
                    if term or trunc:
                        active[m, i] = False
                        for k, v in info.get("episode_stats", {}).items():
                            stats[m].setdefault(k, []).append(float(v))
                rng_states[m] = np.random.get_state()
        for m in range(members):
            returns[m] += list(ep_ret[m, :batch])
            successes[m] += list(ep_succ[m, :batch])
            lengths[m] += list(ep_len[m, :batch])
        next_episode += batch
    out = []
    for m in range(members):
        ret, succ, length = map(np.asarray, (returns[m], successes[m], lengths[m]))
        out.append({
            "episodes": episodes,
            # tasks without a success signal (DMC) report None rather than a 0% that means nothing
            "success": float(succ.mean()) if has_success[m] else None,
            "success_std": float(succ.std()) if has_success[m] else None,
            "return": float(ret.mean()),
            "return_std": float(ret.std()),
            "length": float(length.mean()),
            **{k: float(np.mean(v)) for k, v in stats[m].items()},
        })
    return out


def evaluate_agent(agent, env_name, episodes, omega=None, num_candidates=None, seed=0, envs=None, num_envs=None,
                   selection=None, term_weights=None):
    """Evaluate a flow agent at a given greediness, number of candidates and candidate selection rule; agents that
    weight reward terms at inference (dipole-terms) take `term_weights` ({'safety': 4.0} or 'safety=4') instead of
    omega."""
    extra = guidance_fields(agent, agent.sampling_guidance(omega, term_weights))  # checked before the first episode
    agent.check_sampling(omega, num_candidates, selection=selection)

    def act(obs, key):
        return agent.sample_actions(obs, key, omega=omega, num_candidates=num_candidates, selection=selection,
                                    **extra)

    out = run_episodes(act, env_name, episodes, seed=seed, envs=envs, num_envs=num_envs)
    default_omega = getattr(agent.config, "omega", None)
    out["omega"] = (None if default_omega is None else float(default_omega)) if omega is None else float(omega)
    out["num_candidates"] = int(getattr(agent.config, "num_candidates", 1) if num_candidates is None else num_candidates)
    out["selection"] = agent.selection_of(selection) if out["num_candidates"] > 1 else None
    out.update(extra)
    return out


def guidance_fields(agent, guidance) -> dict:
    """What an evaluation row records of the guidance `agent.sampling_guidance` gave: the term weights of an agent
    that weights reward terms ({'term_weights': {'speed': 1.0, ...}}); nothing for the others (rows carry omega)."""
    if not hasattr(agent, "weight_vector"):
        return {}
    return {"term_weights": dict(zip(agent.config.terms, map(float, np.asarray(guidance))))}


def row_selection(row: dict) -> str | None:
    """The selection rule of an evaluation row: None at K = 1; rows written before 'tilt' existed were 'argmax'."""
    if int(row.get("num_candidates", 1)) <= 1:
        return None
    return row.get("selection") or "argmax"


def setting_label(k: int, selection: str | None) -> str:
    """How a (K, selection) curve is named in tables and plots."""
    if k <= 1:
        return "K=1 (no selection)"
    return f"K={k}, {selection}" + (" (rejection sampling)" if selection == "argmax" else " (tilt resampling)")


def sweep_settings(omegas, candidates, selections=("argmax",)) -> list[tuple]:
    """The (omega, K, selection) rows of a sweep: every omega at K = 1 (no selection), and every omega with every
    selection rule at each K > 1."""
    rows = []
    for k in candidates:
        for sel in (selections if k > 1 else (None,)):
            rows += [(w, k, sel) for w in omegas]
    return rows


def omega_sweep(agent, env_name, omegas, candidates, episodes, seed=0, progress=None,
                selections=("argmax",)) -> list[dict]:
    """One evaluation per (omega, num_candidates, selection); each row is reported separately, never maximised
    over."""
    envs = make_eval_envs(env_name, episodes)
    rows = []
    for w, k, sel in sweep_settings(omegas, candidates, selections):
        rows.append(evaluate_agent(agent, env_name, episodes, omega=w, num_candidates=k, seed=seed, envs=envs,
                                   selection=sel))
        if progress:
            progress(rows[-1])
    return rows
