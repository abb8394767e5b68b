"""Offline training loop: compiled chunks of updates, CSV metrics, progress with ETA, atomic checkpoints, resume.

Batches are drawn inside the compiled chunk from a key derived from (seed, agent step), so a run resumed from a
checkpoint at step k continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import get_agent
from dipole.checkpoint import list_checkpoints, read_checkpoint, restore_agent, save_checkpoint
from dipole.data.dataset import Dataset
from dipole.evaluation import evaluate_agent
from dipole.utils import atomic_write_json


@dataclasses.dataclass
class TrainSettings:
    steps: int = 1_000_000
    seed: int = 0
    log_every: int = 1000  # also the number of updates compiled into one call
    eval_every: int = 100_000
    eval_episodes: int = 50
    save_every: int = 100_000
    keep_checkpoints: int = 2
    tensorboard: bool = False
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "log_every", "eval_every", "save_every", "eval_episodes", "keep_checkpoints"):
            if getattr(self, name) < (0 if name in ("eval_every", "eval_episodes") else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        self.log_every = min(self.log_every, self.steps)
        for name in ("eval_every", "save_every"):
            value = getattr(self, name)
            if value and value % self.log_every:
                raise ValueError(f"{name} ({value}) must be a multiple of log_every ({self.log_every})")


@partial(jax.jit, static_argnames=("num_updates", "batch_size"))
def train_chunk(agent, data: dict, data_key, num_updates: int, batch_size: int):
    """`num_updates` updates in one compiled call; returns (agent, metrics averaged over the chunk)."""
    size = data["observations"].shape[0]

    def one(agent, _):
        key = jax.random.fold_in(data_key, agent.step)
        idx = jax.random.randint(key, (batch_size,), 0, size)
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        return agent.update(batch)

    agent, infos = jax.lax.scan(one, agent, None, length=num_updates)
    return agent, jax.tree_util.tree_map(jnp.mean, infos)


class CSVLog:
    """Append-only CSV whose columns are fixed by its first row; on resume rows past `step` are dropped."""

    def __init__(self, path: str, resume_step: int | None = None):
        self.path = path
        self.fields = None
        if resume_step is not None and os.path.exists(path):
            with open(path) as f:
                rows = list(csv.DictReader(f))
            kept = [r for r in rows if int(float(r["step"])) <= resume_step]
            if rows:
                self.fields = list(rows[0].keys())
                with open(path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(kept)
        elif os.path.exists(path):
            os.unlink(path)

    def write(self, row: dict):
        new = not os.path.exists(self.path)
        if self.fields is None:
            self.fields = list(row.keys())
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
            f.flush()


def read_csv(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _checkpoint_header(agent_name, config, dataset: Dataset, env_name, step, settings, extra=None):
    return {
        "agent": agent_name,
        "config": config.to_dict(),
        "obs_dim": dataset.obs_dim,
        "action_dim": dataset.action_dim,
        "env": env_name,
        "step": int(step),
        "seed": settings.seed,
        "dataset_path": dataset.name,
        **(extra or {}),
    }


def train(
    run_dir: str,
    env_name: str,
    dataset: Dataset,
    agent_name: str = "dipole",
    config=None,
    settings: TrainSettings | None = None,
    resume: bool = False,
    log=print,
):
    """Train an agent offline on `dataset`; evaluate on `env_name` every `eval_every` steps. Returns the agent."""
    settings = settings or TrainSettings()
    agent_cls, config_cls = get_agent(agent_name)
    config = config or config_cls()
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)

    start_step = 0
    agent = None
    if resume:
        ckpts = list_checkpoints(run_dir)
        if ckpts:
            from dipole.checkpoint import resolve_checkpoint

            path = resolve_checkpoint(run_dir)
            header, state = read_checkpoint(path)
            if header["agent"] != agent_name or config_cls.from_dict(header["config"]) != config:
                raise ValueError(
                    f"--resume: {path} was trained with agent '{header['agent']}' and a different config; "
                    "resume with the same settings or use a new --run-dir."
                )
            agent = restore_agent(header, state)
            start_step = int(header["step"])
            log(f"resuming from {path} at step {start_step}")
        else:
            log(f"--resume: no checkpoint in {run_dir}; starting from scratch")
    if agent is None:
        agent = agent_cls.create(settings.seed, dataset["observations"][:1], dataset["actions"][:1], config)

    atomic_write_json(
        os.path.join(run_dir, "config.json"),
        {"agent": agent_name, "env": env_name, "config": config.to_dict(), "train": dataclasses.asdict(settings),
         "dataset": dataset.summary()},
    )
    metrics_log = CSVLog(os.path.join(run_dir, "metrics.csv"), start_step if resume else None)
    eval_log = CSVLog(os.path.join(run_dir, "eval.csv"), start_step if resume else None)
    tb = _tensorboard(run_dir) if settings.tensorboard else None

    data = jax.device_put(dataset.training_arrays())
    data_key = jax.random.PRNGKey(settings.seed + 1)
    eval_envs = None

    from tqdm import tqdm

    bar = tqdm(total=settings.steps, initial=start_step, desc=f"train {agent_name}", unit="upd",
               disable=not settings.progress, dynamic_ncols=True)
    step = start_step
    t_start = time.time()
    while step < settings.steps:
        n = min(settings.log_every, settings.steps - step)
        agent, info = train_chunk(agent, data, data_key, n, config.batch_size)
        info = {k: float(v) for k, v in jax.device_get(info).items()}
        step += n
        bar.update(n)
        if not all(np.isfinite(v) for v in info.values()):
            bad = sorted(k for k, v in info.items() if not np.isfinite(v))
            raise FloatingPointError(f"non-finite training metrics {bad} at step {step}; lower config.lr or check data")
        row = {"step": step, "time": round(time.time() - t_start, 3), **info}
        metrics_log.write(row)
        if tb:
            for k, v in info.items():
                tb.add_scalar(f"train/{k}", v, step)
        bar.set_postfix(q=f"{info.get('q_loss', float('nan')):.3g}", refresh=False)
        if settings.eval_every and settings.eval_episodes and step % settings.eval_every == 0:
            from dipole.envs import make_env

            eval_envs = eval_envs or [make_env(env_name) for _ in range(min(settings.eval_episodes, 16))]
            res = evaluate_agent(agent, env_name, settings.eval_episodes, seed=settings.seed, envs=eval_envs)
            eval_log.write({"step": step, **res})
            if tb:
                if res["success"] is not None:
                    tb.add_scalar("eval/success", res["success"], step)
                tb.add_scalar("eval/return", res["return"], step)
            succ = "n/a" if res["success"] is None else f"{res['success']:.3f}"
            bar.write(f"step {step}: success {succ} return {res['return']:.2f} "
                      f"(omega {res['omega']}, K {res['num_candidates']})")
        if step % settings.save_every == 0 or step == settings.steps:
            path = os.path.join(run_dir, "checkpoints", f"ckpt-{step:08d}.dpl")
            save_checkpoint(path, agent, _checkpoint_header(agent_name, config, dataset, env_name, step, settings))
            for old in list_checkpoints(run_dir)[: -settings.keep_checkpoints]:
                os.unlink(old)
    bar.close()
    if tb:
        tb.close()
    return agent


def _tensorboard(run_dir):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError("--tensorboard needs tensorboardX: pip install 'dipole-rl[tensorboard]'") from None
    return SummaryWriter(os.path.join(run_dir, "tb"))
