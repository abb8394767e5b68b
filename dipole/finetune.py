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

from dipole.checkpoint import CheckpointError, list_checkpoints, read_checkpoint, restore_agent, save_checkpoint
from dipole.data.dataset import REQUIRED_KEYS, Dataset
from dipole.envs import make_env
from dipole.evaluation import evaluate_agent
from dipole.train import CSVLog, read_csv
from dipole.utils import atomic_write_json

FINETUNE_FORMAT = 1


@dataclasses.dataclass
class FinetuneSettings:
    online_steps: int = 1_000_000
    updates_per_step: int = 1  # gradient steps per environment step (the update-to-data ratio)
    buffer_capacity: int | None = None  # online transitions kept (a ring); None keeps all `online_steps`
    act_omega: float | None = None  # greediness while collecting; None: the agent's config value
    act_candidates: int | None = None  # rejection-sampling candidates while collecting; None: config value
    eval_omega: float | None = None
    eval_candidates: int | None = None
    episode_length: int | None = None  # truncate training episodes here; None: the environment's own limit
    eval_every: int = 100_000
    eval_episodes: int = 50
    save_every: int = 100_000
    log_every: int = 1000
    keep_checkpoints: int = 2
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        for name in ("online_steps", "updates_per_step", "log_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "eval_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.buffer_capacity is not None and self.buffer_capacity < 1:
            raise ValueError(f"buffer_capacity must be >= 1 (or None for all online steps), got {self.buffer_capacity}")
        if self.save_every % self.log_every:
            raise ValueError(f"save_every ({self.save_every}) must be a multiple of log_every ({self.log_every})")
        if self.episode_length is not None and self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {self.episode_length}")

    @property
    def online_capacity(self) -> int:
        return self.buffer_capacity or self.online_steps


class ReplayBuffer:
    """The offline dataset (fixed, first rows) followed by a ring of `capacity` online transitions."""

    def __init__(self, offline: Dataset, capacity: int):
        self.num_offline = len(offline)
        self.capacity = int(capacity)
        self.count = 0  # online transitions ever added
        self.data = {}
        for k in REQUIRED_KEYS:
            src = offline[k]
            self.data[k] = np.empty((self.num_offline + self.capacity,) + src.shape[1:], np.float32)
            self.data[k][: self.num_offline] = src

    @property
    def online_size(self) -> int:
        return min(self.count, self.capacity)

    def __len__(self) -> int:
        return self.num_offline + self.online_size

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.data.values())

    def add(self, obs, action, reward, mask, next_obs) -> None:
        i = self.num_offline + self.count % self.capacity
        self.data["observations"][i] = obs
        self.data["actions"][i] = action
        self.data["rewards"][i] = reward
        self.data["masks"][i] = mask
        self.data["next_observations"][i] = next_obs
        self.count += 1

    def sample(self, rng: np.random.Generator, shape) -> dict:
        idx = rng.integers(0, len(self), size=shape)
        return {k: v[idx] for k, v in self.data.items()}

    def online_arrays(self) -> dict:
        """The filled online rows in storage order (what a checkpoint keeps)."""
        lo, hi = self.num_offline, self.num_offline + self.online_size
        return {f"buffer/{k}": v[lo:hi] for k, v in self.data.items()}

    def restore_online(self, arrays: dict, count: int) -> None:
        size = min(count, self.capacity)
        for k in REQUIRED_KEYS:
            rows = np.asarray(arrays[f"buffer/{k}"])
            if len(rows) != size:
                raise CheckpointError(f"checkpoint buffer field '{k}' has {len(rows)} rows, expected {size}")
            self.data[k][self.num_offline : self.num_offline + size] = rows
        self.count = int(count)


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
        episode_seed = (self.seed * 1_000_003 + 7919 * episode + 17) % 2**31
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


def finetune(
    run_dir: str,
    env_name: str,
    dataset: Dataset,
    agent,
    settings: FinetuneSettings | None = None,
    resume: bool = False,
    source: str | None = None,
    log=print,
):
    """Fine-tune `agent` online in `env_name`, its buffer seeded with `dataset`. Returns (agent, buffer).

    With resume=True the newest valid checkpoint in `run_dir/checkpoints` (written by an earlier call) is continued;
    `agent` is then only a template for its type and config.
    """
    settings = settings or FinetuneSettings()
    config = agent.config
    agent_name = config.agent
    act_kw = {"omega": settings.act_omega, "num_candidates": settings.act_candidates}
    eval_kw = {"omega": settings.eval_omega, "num_candidates": settings.eval_candidates}
    for kw in (act_kw, eval_kw):  # fail now, not after the first episode
        agent.sample_actions(dataset["observations"][0], jax.random.PRNGKey(0), **kw)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)

    buffer = ReplayBuffer(dataset, settings.online_capacity)
    log(f"replay buffer: {buffer.num_offline} offline + up to {buffer.capacity} online transitions, "
        f"{buffer.nbytes / 2**20:.1f} MiB preallocated")
    env = _TrainingEnv(env_name, settings.seed, settings.episode_length)
    state = {"env_step": 0, "episode": 0, "ep_return": 0.0, "ep_success": 0.0, "ep_actions": []}
    obs = None

    ckpts = list_checkpoints(run_dir) if resume else []
    if resume and not ckpts:
        log(f"--resume: no checkpoint in {run_dir}; starting the fine-tune from the given agent")
    if ckpts:
        from dipole.checkpoint import resolve_checkpoint

        path = resolve_checkpoint(run_dir)
        header, raw = read_checkpoint(path)
        ft = header.get("finetune")
        if ft is None or ft.get("format") != FINETUNE_FORMAT:
            raise CheckpointError(f"{path} is not a fine-tuning checkpoint; use a new --run-dir for the fine-tune")
        if header["agent"] != agent_name or ft["offline_transitions"] != len(dataset) or \
                ft["buffer_capacity"] != buffer.capacity or ft["seed"] != settings.seed:
            raise ValueError(
                f"--resume: {path} was made with agent '{header['agent']}', {ft['offline_transitions']} offline "
                f"transitions, buffer capacity {ft['buffer_capacity']} and seed {ft['seed']}; resume with the same "
                "checkpoint, dataset, --buffer-capacity and --seed, or use a new --run-dir."
            )
        agent = restore_agent(header, raw)
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

    resumed_at = state["env_step"] if ckpts else None
    atomic_write_json(os.path.join(run_dir, "config.json"), {
        "mode": "finetune", "agent": agent_name, "env": env_name, "source": source, "config": config.to_dict(),
        "finetune": dataclasses.asdict(settings), "dataset": dataset.summary(),
        "buffer_bytes": buffer.nbytes,
    })
    metrics_log = CSVLog(os.path.join(run_dir, "metrics.csv"), resumed_at)
    eval_log = CSVLog(os.path.join(run_dir, "eval.csv"), resumed_at)
    episode_log = CSVLog(os.path.join(run_dir, "episodes.csv"), resumed_at)
    eval_envs = None

    def evaluate(step):
        nonlocal eval_envs
        if not (settings.eval_every and settings.eval_episodes):
            return
        eval_envs = eval_envs or [make_env(env_name) for _ in range(min(settings.eval_episodes, 16))]
        res = evaluate_agent(agent, env_name, settings.eval_episodes, seed=settings.seed, envs=eval_envs, **eval_kw)
        eval_log.write({"step": step, "updates": int(agent.step), **res})
        succ = "n/a" if res["success"] is None else f"{res['success']:.3f}"
        log(f"env step {step}: eval success {succ} return {res['return']:.2f}")

    if obs is None:
        evaluate(0)  # the offline agent's score: step 0 of the curve
        obs = env.reset(state["episode"])

    from tqdm import tqdm

    act_key = jax.random.PRNGKey(settings.seed + 2)
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

        rng = np.random.default_rng([settings.seed, 1, int(agent.step)])
        batches = buffer.sample(rng, (settings.updates_per_step, config.batch_size))
        agent, infos = _update_many(agent, batches)
        pending.append(infos)

        if terminated or truncated:
            row = {"step": step, "episode": state["episode"], "return": state["ep_return"],
                   "length": len(state["ep_actions"]), "success": state["ep_success"] if "success" in info else ""}
            episode_log.write(row)
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
                raise FloatingPointError(f"non-finite training metrics {bad} at env step {step}; lower the lr")
            metrics_log.write({"step": step, "updates": int(agent.step), "buffer": len(buffer),
                               "time": round(time.time() - t_start, 3), **info_row})
            if recent:
                bar.set_postfix(ep_return=f"{np.mean([r['return'] for r in recent]):.1f}", refresh=False)
        if settings.eval_every and step % settings.eval_every == 0:
            evaluate(step)
        if step % settings.save_every == 0 or step == settings.online_steps:
            _save(run_dir, agent, buffer, state, obs, settings, env_name, dataset, source)
    bar.close()
    return agent, buffer


def _save(run_dir, agent, buffer, state, obs, settings, env_name, dataset, source):
    step = state["env_step"]
    header = {
        "agent": agent.config.agent, "config": agent.config.to_dict(), "obs_dim": dataset.obs_dim,
        "action_dim": dataset.action_dim, "env": env_name, "step": int(agent.step), "seed": settings.seed,
        "dataset_path": dataset.name, "source": source,
        "finetune": {
            "format": FINETUNE_FORMAT, "env_step": step, "episode": state["episode"],
            "ep_return": state["ep_return"], "ep_success": state["ep_success"], "online_count": buffer.count,
            "buffer_capacity": buffer.capacity, "offline_transitions": buffer.num_offline, "seed": settings.seed,
        },
    }
    actions = np.asarray(state["ep_actions"], np.float32).reshape(-1, dataset.action_dim)
    extra = {**buffer.online_arrays(), "episode_actions": actions, "obs": obs}
    path = os.path.join(run_dir, "checkpoints", f"ckpt-{step:08d}.dpl")
    save_checkpoint(path, agent, header, extra)
    for old in list_checkpoints(run_dir)[: -settings.keep_checkpoints]:
        os.unlink(old)


def finetune_curve(run_dir: str, title: str = "") -> str:
    """Evaluation success/return against environment steps (step 0 = the offline agent) and training episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = read_csv(os.path.join(run_dir, "eval.csv"))
    episodes = read_csv(os.path.join(run_dir, "episodes.csv"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    if evals:
        steps = [e["step"] for e in evals]
        has_success = all(isinstance(e.get("success"), float) for e in evals)
        ax = axes[0]
        if has_success:
            ax.plot(steps, [100 * e["success"] for e in evals], "o-", label="eval success (%)")
            ax.set_ylim(-2, 102)
            ax.set_ylabel("success (%)")
            ax2 = ax.twinx()
        else:
            ax2 = ax
        ax2.plot(steps, [e["return"] for e in evals], "s--", color="tab:orange", label="eval return")
        ax2.set_ylabel("return")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title("evaluation (step 0 = offline agent)")
        ax.set_xlabel("environment steps")
        lines = ax.get_legend_handles_labels()[0] + (ax2.get_legend_handles_labels()[0] if ax2 is not ax else [])
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="best")
    if episodes:
        xs = np.array([e["step"] for e in episodes])
        rs = np.array([e["return"] for e in episodes])
        axes[1].plot(xs, rs, ".", alpha=0.4, label="training episode return")
        w = max(1, len(rs) // 20)
        if len(rs) >= w:
            axes[1].plot(xs[w - 1:], np.convolve(rs, np.ones(w) / w, mode="valid"), "-", label=f"mean of {w}")
        axes[1].set_xlabel("environment steps")
        axes[1].set_title("training episodes (acting policy)")
        axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = os.path.join(run_dir, "finetune_curve.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
