"""Offline-to-online fine-tuning: keep training with the same losses while acting in the environment.

Every environment step adds one transition to a replay buffer that holds the whole offline dataset (never
overwritten) plus a ring of the most recent online transitions, then takes `updates_per_step` gradient steps on
batches drawn uniformly from the buffer. Exploration is the policy's own sampling noise (the flow's Gaussian
start, or the Gaussian policy for IQL), at an acting omega/K set separately from evaluation.

Exact resume: action keys derive from (seed, env step), batch indices from (seed, update step), each training
episode resets with a seed derived from its index, and the training environment keeps its own copy of numpy's
global RNG (OGBench draws from it). A checkpoint stores the agent, the online part of the buffer, the counters and
the actions taken so far in the current episode; on resume the episode is rebuilt by replaying those actions, so a
killed run continues exactly as the uninterrupted run would have, without repeating or losing environment steps.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import restore
from dipole.data.dataset import Dataset
from dipole.data.replay import ReplayBuffer
from dipole.envs import make_env
from dipole.errors import DivergedError, UsageError
from dipole.runfolder import new_run_id, open_run_folder, save_checkpoint
from dipole.runners.evaluation import evaluate_agent, make_eval_envs
from dipole.runners.intervals import check_intervals
from dipole.runners.logging import LogSettings, RunLogger
from dipole.runners.loop import FINETUNE_FORMAT, resume_point
from dipole.seeding import stream_key, stream_rng, stream_seed
from dipole.storage import (
    atomic_write_json,
)


@dataclasses.dataclass
class FinetuneSettings:
    """How long to fine-tune, how to act while collecting, and how often to log, evaluate and save."""

    online_steps: int = 1_000_000
    """Environment steps to collect."""
    updates_per_step: int = 1
    """Gradient steps per environment step (the update-to-data ratio)."""
    buffer_capacity: int | None = None
    """Online transitions kept (a ring; None keeps all); the offline dataset always stays in the buffer."""
    act_omega: float | None = None
    """Greediness while collecting (None: the agent's config value)."""
    act_candidates: int | None = None
    """Rejection-sampling K while collecting (None: the agent's config value)."""
    act_temperature: float | None = None
    """Gaussian policies (iql): noise scale while collecting (None: 1, the policy as trained; 0: its mean)."""
    eval_omega: float | None = None
    """Greediness for evaluation (None: the agent's config value)."""
    eval_candidates: int | None = None
    """Rejection-sampling K for evaluation (None: the agent's config value)."""
    episode_length: int | None = None
    """Truncate training episodes here (None: the environment's own limit)."""
    eval_every: int = 100_000
    """Environment steps between evaluations (0: none before the end); step 0 and the last step are evaluated."""
    eval_episodes: int = 50
    """Episodes per evaluation (0: no evaluation)."""
    save_every: int = 100_000
    """Environment steps between checkpoints; the last step is always saved."""
    log_every: int = 1000
    """Environment steps between rows of metrics.csv."""
    keep_checkpoints: int = 2
    """Checkpoints kept in RUN/checkpoints."""
    seed: int = 0
    """Seed of acting, batches and the training episodes."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self):
        check_intervals(self, "online_steps", {"online_steps": 1, "updates_per_step": 1, "log_every": 1,
                                               "save_every": 1, "keep_checkpoints": 1, "eval_every": 0,
                                               "eval_episodes": 0}, ("save_every",))
        if self.buffer_capacity is not None and self.buffer_capacity < 1:
            raise UsageError(f"buffer_capacity must be >= 1 (or None for all online steps), got {self.buffer_capacity}")
        if self.episode_length is not None and self.episode_length < 1:
            raise UsageError(f"episode_length must be >= 1, got {self.episode_length}")
        if self.act_temperature is not None and not self.act_temperature >= 0:
            raise UsageError(f"act_temperature must be >= 0, got {self.act_temperature}")

    @property
    def online_capacity(self) -> int:
        return self.buffer_capacity or self.online_steps


@jax.jit
def _update_many(agent, batches):
    """Gradient steps on a stack of batches (leading axis = updates), compiled as one call."""
    return jax.lax.scan(lambda a, b: a.update(b), agent, batches)


class _TrainingEnv:
    """The environment the agent collects in, with its own numpy global-RNG stream and optional truncation."""

    def __init__(self, env_name: str, seed: int, episode_length: int | None):
        self.env = make_env(env_name)
        self.seed = seed
        self.episode_length = episode_length
        self.np_state = None
        self.t = 0

    def _swap(self, fn, *args, **kw):
        outer = np.random.get_state()
        np.random.set_state(self.np_state)
        try:
            return fn(*args, **kw)
        finally:
            self.np_state = np.random.get_state()
            np.random.set_state(outer)

    def reset(self, episode: int):
        episode_seed = stream_seed(self.seed, "env", episode)
        self.np_state = np.random.RandomState(episode_seed).get_state()
        self.t = 0
        obs, _ = self._swap(self.env.reset, seed=episode_seed)
        return np.asarray(obs, np.float32)

    def step(self, action):
        obs, reward, terminated, truncated, info = self._swap(self.env.step, action)
        self.t += 1
        if self.episode_length is not None and self.t >= self.episode_length:
            truncated = True
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info


RESULT_SETTINGS = ("updates_per_step", "buffer_capacity", "act_omega", "act_candidates", "act_temperature",
                   "episode_length")  # the fine-tune settings that change what is learned (checked on resume)


def finetune(
    run_dir: str,
    env_name: str,
    dataset: Dataset,
    agent,
    settings: FinetuneSettings | None = None,
    resume: bool = False,
    source: str | None = None,
    log=print,
    logging: LogSettings | None = None,
    overwrite: bool = False,
):
    """Fine-tune `agent` online in `env_name`, its buffer seeded with `dataset`. Returns (agent, buffer).

    The run folder is this process's alone while it runs. With resume=True the newest valid checkpoint in
    `run_dir/checkpoints` (written by an earlier call) is continued, provided it was made with the same seed, data,
    config and result-changing settings; `agent` is then only a template for its type and config. A folder holding
    an earlier run is refused unless `resume` or `overwrite`.
    """
    settings = settings or FinetuneSettings()
    with open_run_folder(run_dir, resume, overwrite, log, what="fine-tune"):
        return _finetune(run_dir, env_name, dataset, agent, settings, resume, source, log, logging)


def _finetune(run_dir, env_name, dataset, agent, settings, resume, source, log, logging):
    config = agent.config
    agent_name = config.agent
    temperature = (1.0 if settings.act_temperature is None else settings.act_temperature) \
        if agent.samples_with("temperature") else settings.act_temperature
    act_kw = {"omega": settings.act_omega, "num_candidates": settings.act_candidates, "temperature": temperature}
    eval_kw = {"omega": settings.eval_omega, "num_candidates": settings.eval_candidates}
    for kw in (act_kw, eval_kw):  # fail now, not after the first episode
        agent.check_sampling(**kw)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    facts = {"agent": agent_name, "env": env_name, "seed": settings.seed,
             "dataset_fingerprint": dataset.fingerprint(),
             **{k: getattr(settings, k) for k in RESULT_SETTINGS},
             **{f"config.{k}": v for k, v in config.to_dict().items()}}
    facts["source"] = source

    buffer = ReplayBuffer(dataset, settings.online_capacity)
    log(f"replay buffer: {buffer.num_offline} offline + up to {buffer.capacity} online transitions, "
        f"{buffer.nbytes / 2**20:.1f} MiB preallocated")
    env = _TrainingEnv(env_name, settings.seed, settings.episode_length)
    state = {"env_step": 0, "episode": 0, "ep_return": 0.0, "ep_success": 0.0, "ep_actions": []}
    obs = None
    run_id = new_run_id()

    found = (resume_point(run_dir, facts, None, log, "finetune", fresh="starting the fine-tune from the given agent")
             if resume else None)
    ckpts = found is not None
    if found is not None:
        header, raw, _, run_id, path = found
        ft = header["finetune"]
        agent = restore(header, raw)
        extra = raw["extra"]
        buffer.restore_online(extra, ft["online_count"])
        state.update(env_step=ft["env_step"], episode=ft["episode"], ep_return=ft["ep_return"],
                     ep_success=ft["ep_success"])
        ep_actions = np.asarray(extra["episode_actions"], np.float32).reshape(-1, dataset.action_dim)
        obs = env.reset(state["episode"])
        for a in ep_actions:  # rebuild the environment's state inside the current episode
            obs, *_ = env.step(a)
        state["ep_actions"] = list(ep_actions)
        saved_obs = np.asarray(extra["obs"], np.float32)
        if not np.allclose(obs, saved_obs, atol=1e-5):
            log("warning: replaying the current episode did not reproduce the saved observation (is the "
                "environment deterministic for a seed?); continuing from the replayed state")
        log(f"resuming fine-tune from {path} at env step {state['env_step']} (episode {state['episode']}, "
            f"step {len(ep_actions)} of it), {buffer.online_size} online transitions restored")
    config = agent.config  # the restored agent's (equal to the template's, as checked)

    resumed_at = state["env_step"] if ckpts else None
    atomic_write_json(os.path.join(run_dir, "config.json"), {
        "mode": "finetune", "agent": agent_name, "run_id": run_id, "dataset_fingerprint": facts["dataset_fingerprint"], "env": env_name, "source": source, "config": config.to_dict(),
        "finetune": dataclasses.asdict(settings), "dataset": dataset.summary(),
        "buffer_bytes": buffer.nbytes,
    })
    logger = RunLogger(run_dir, ("metrics", "eval", "episodes"), resumed_at, logging,
                       config={"agent": agent_name, "env": env_name, "mode": "finetune", **config.to_dict(),
                               **dataclasses.asdict(settings)})
    eval_envs = None

    def evaluate(step):
        nonlocal eval_envs
        if not settings.eval_episodes:
            return
        eval_envs = eval_envs or make_eval_envs(env_name, settings.eval_episodes)
        res = evaluate_agent(agent, env_name, settings.eval_episodes, seed=settings.seed, envs=eval_envs, **eval_kw)
        logger.log("eval", {"step": step, "updates": int(agent.step), **res})
        succ = "n/a" if res["success"] is None else f"{res['success']:.3f}"
        log(f"env step {step}: eval success {succ} return {res['return']:.2f}")

    if obs is None:
        evaluate(0)  # the offline agent's score: step 0 of the curve
        obs = env.reset(state["episode"])

    from tqdm import tqdm

    act_key = stream_key(settings.seed, "act")
    bar = tqdm(total=settings.online_steps, initial=state["env_step"], desc=f"finetune {agent_name}", unit="step",
               disable=not settings.progress, dynamic_ncols=True)
    pending = []  # metrics of the updates since the last log row (device arrays; read once per row)
    t_start = time.time()
    recent = []
    while state["env_step"] < settings.online_steps:
        step = state["env_step"]
        action = np.asarray(agent.sample_actions(obs, jax.random.fold_in(act_key, step), **act_kw), np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(obs, action, reward, 0.0 if terminated else 1.0, next_obs)
        state["ep_actions"].append(action)
        state["ep_return"] += reward
        state["ep_success"] = float(info.get("success", state["ep_success"]))
        obs = next_obs
        state["env_step"] = step = step + 1

        rng = stream_rng(settings.seed, "data", int(agent.step))
        batches = buffer.sample(rng, (settings.updates_per_step, config.batch_size))
        agent, infos = _update_many(agent, batches)
        pending.append(infos)

        if terminated or truncated:
            row = {"step": step, "episode": state["episode"], "return": state["ep_return"],
                   "length": len(state["ep_actions"]), "success": state["ep_success"] if "success" in info else ""}
            logger.log("episodes", row)
            recent = (recent + [row])[-10:]
            state.update(episode=state["episode"] + 1, ep_return=0.0, ep_success=0.0, ep_actions=[])
            obs = env.reset(state["episode"])
        bar.update(1)
        if step % settings.log_every == 0 or step == settings.online_steps:
            stacked = jax.device_get(jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *pending))
            pending = []
            info_row = {k: float(np.mean(v)) for k, v in stacked.items()}
            bad = sorted(k for k, v in info_row.items() if not np.isfinite(v))
            if bad:
                raise DivergedError(f"non-finite training metrics {bad} at env step {step}; lower the lr")
            logger.log("metrics", {"step": step, "updates": int(agent.step), "buffer": len(buffer),
                               "time": round(time.time() - t_start, 3), **info_row})
            if recent:
                bar.set_postfix(ep_return=f"{np.mean([r['return'] for r in recent]):.1f}", refresh=False)
        if (settings.eval_every and step % settings.eval_every == 0) or step == settings.online_steps:
            evaluate(step)
        if step % settings.save_every == 0 or step == settings.online_steps:
            _save(run_dir, agent, buffer, state, obs, settings, env_name, dataset, source, run_id, facts)
    bar.close()
    logger.close()
    return agent, buffer


def _save(run_dir, agent, buffer, state, obs, settings, env_name, dataset, source, run_id, facts):
    step = state["env_step"]
    finetune_state = {
        "format": FINETUNE_FORMAT, "env_step": step, "episode": state["episode"],
        "ep_return": state["ep_return"], "ep_success": state["ep_success"], "online_count": buffer.count,
        "offline_transitions": buffer.num_offline,
        **{k: facts[k] for k in RESULT_SETTINGS},
    }
    actions = np.asarray(state["ep_actions"], np.float32).reshape(-1, dataset.action_dim)
    extra = {**buffer.online_arrays(), "episode_actions": actions, "obs": obs}
    save_checkpoint(run_dir, step, settings.keep_checkpoints, run_id,
                    lambda path: agent.save(path, extra, env=env_name, seed=settings.seed, dataset_path=dataset.name,
                                            dataset_fingerprint=facts["dataset_fingerprint"], source=source,
                                            run_id=run_id, finetune=finetune_state))
