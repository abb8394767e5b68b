"""Offline training loop: compiled chunks of updates, logs, progress with ETA, atomic checkpoints, exact resume.

Batches are drawn inside the compiled chunk from a key derived from (seed, agent step), so a run resumed from a
checkpoint at step k continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import get_agent, restore
from dipole.agents.presets import SIZE_PRESETS
from dipole.data.dataset import Dataset
from dipole.errors import UsageError
from dipole.runfolder import check_resume, check_run_id, new_run_id, open_run_folder, save_checkpoint
from dipole.runners.evaluation import evaluate_agent, make_eval_envs
from dipole.runners.intervals import check_intervals
from dipole.runners.logging import LogSettings, RunLogger
from dipole.seeding import stream_key
from dipole.storage import atomic_write_json, list_checkpoints, read_checkpoint, resolve_checkpoint

CPU_PAPER_WARN_STEPS = 100_000


@dataclasses.dataclass
class TrainSettings:
    """How long to train and how often to log, evaluate and save (everything that is not the agent's config)."""

    steps: int = 1_000_000
    """Gradient updates in all."""
    seed: int = 0
    """Seed of the agent's initialisation, its batches and the evaluation episodes."""
    log_every: int = 1000
    """Updates between rows of metrics.csv; also the number of updates compiled into one call."""
    eval_every: int = 100_000
    """Updates between evaluations (0: none before the end); the final step is always evaluated."""
    eval_episodes: int = 50
    """Episodes per evaluation (0: no evaluation at all)."""
    save_every: int = 100_000
    """Updates between checkpoints; the final step is always saved."""
    keep_checkpoints: int = 2
    """Checkpoints kept in RUN/checkpoints (older ones are deleted)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self):
        check_intervals(self, "steps", {"steps": 1, "log_every": 1, "eval_every": 0, "save_every": 1,
                                        "eval_episodes": 0, "keep_checkpoints": 1}, ("eval_every", "save_every"))


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


@partial(jax.jit, static_argnames=("batch_size",))
def validation_metrics(agent, data: dict, key, batch_size: int):
    """The losses of one update on a batch of held-out data, at the current parameters; the agent is not changed."""
    idx = jax.random.randint(key, (batch_size,), 0, data["observations"].shape[0])
    _, info = agent.update(jax.tree_util.tree_map(lambda x: x[idx], data))
    return info


def network_label(config) -> str:
    """'4x512' for (512, 512, 512, 512); the preset's name when the sizes are a preset's."""
    dims = config.actor_hidden_dims
    shape = f"{len(dims)}x{dims[0]}" if dims and len(set(dims)) == 1 else "x".join(map(str, dims))
    preset = next((name for name, o in SIZE_PRESETS.items()
                   if tuple(o.get("actor_hidden_dims", (512,) * 4)) == tuple(dims)
                   and tuple(o.get("value_hidden_dims", (512,) * 4)) == tuple(config.value_hidden_dims)), None)
    return f"{shape} (preset {preset})" if preset else shape


def cpu_warning(config, steps: int) -> str | None:
    """A warning for paper-size networks trained for long on a CPU (hours to days), naming the small preset."""
    paper = max(config.actor_hidden_dims, default=0) >= 512  # the papers' 512-wide MLPs (3 or 4 layers)
    if jax.default_backend() == "cpu" and paper and steps > CPU_PAPER_WARN_STEPS:
        depth = len(config.actor_hidden_dims)
        return (f"warning: {steps} updates with the paper's {depth}x512 networks on a CPU take many hours; "
                "use --preset small (3x128) for CPU runs, or a GPU")
    return None


def fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _resume_fields(agent_name, env_name, config, seed, dataset, val_dataset) -> dict:
    """Everything that changes a training run's results, as recorded in its checkpoints and checked on resume."""
    return {"agent": agent_name, "env": env_name, "seed": seed, "dataset_fingerprint": dataset.fingerprint(),
            "val_dataset_fingerprint": val_dataset.fingerprint() if val_dataset is not None else None,
            **{f"config.{k}": v for k, v in config.to_dict().items()}}


def resume_point(run_dir: str, facts: dict, steps: int, log, population: bool = False):
    """The newest valid checkpoint of `run_dir` to resume from -> (header, raw state, its step, run id), or None
    (said) when the folder has none. Refused: a checkpoint of the other kind (a population's for a single run or
    the reverse), one whose recorded `facts` (agent, data, seed or members, config) differ, another run's, or one
    past `steps`."""
    if not list_checkpoints(run_dir):
        log(f"--resume: no checkpoint in {run_dir}; starting from scratch")
        return None
    path = resolve_checkpoint(run_dir, log=log)
    header, state = read_checkpoint(path)
    if ("members" in header) != population:
        raise UsageError(f"--resume: {path} is a population's checkpoint; resume it with `dipole train --seeds`"
                         if not population else
                         f"--resume: {path} is a single run's checkpoint, not a population's; resume it with "
                         "`dipole train` without --seeds, or choose another folder")
    saved_config = get_agent(header["agent"])[1].saved_fields(header["config"])  # e.g. an older DIPOLE: iql form
    saved = {"agent": header["agent"], **{k: header[k] for k in facts if k in header},
             **{f"config.{k}": v for k, v in saved_config.items()}}
    check_resume(path, saved, facts)
    check_run_id(run_dir, path, header)
    step = int(header["step"])
    if step > steps:
        raise UsageError(f"--resume: {path} is at step {step}, past --steps {steps}; pass --steps {step} or more")
    log(f"resuming {'the population ' if population else ''}from {path} at step {step}")
    return header, state, step, header.get("run_id") or new_run_id()


def train(
    run_dir: str,
    env_name: str,
    dataset: Dataset,
    agent_name: str = "dipole",
    config=None,
    settings: TrainSettings | None = None,
    resume: bool = False,
    log=print,
    val_dataset: Dataset | None = None,
    logging: LogSettings | None = None,
    overwrite: bool = False,
):
    """Train an agent offline on `dataset`; evaluate on `env_name` every `eval_every` steps and at the end.

    The run folder is this process's alone while it trains (a second process is refused). A folder holding an
    earlier run is refused unless `resume` (continue it: seed, data and config must match) or `overwrite` (delete
    it). `val_dataset` (e.g. OGBench's `-val` split): the agent's losses on it are logged every `log_every` updates
    as `val/...` columns of metrics.csv. Returns the agent.
    """
    settings = settings or TrainSettings()
    agent_cls, config_cls = get_agent(agent_name)
    config = config or config_cls()
    agent_cls.check_dataset(config, dataset)
    with open_run_folder(run_dir, resume, overwrite, log):
        return _train(run_dir, env_name, dataset, agent_name, agent_cls, config, settings, resume, log,
                      val_dataset, logging)


def _train(run_dir, env_name, dataset, agent_name, agent_cls, config, settings, resume, log, val_dataset, logging):
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    facts = _resume_fields(agent_name, env_name, config, settings.seed, dataset, val_dataset)
    start_step, run_id, agent = 0, new_run_id(), None
    found = resume_point(run_dir, facts, settings.steps, log) if resume else None
    if found is not None:
        header, state, start_step, run_id = found
        agent = restore(header, state)
    if agent is None:
        agent = agent_cls.create(settings.seed, dataset["observations"][:1], dataset["actions"][:1], config)
    agent.check_sampling()  # a bad omega or K in the config fails now, not at the first evaluation

    atomic_write_json(
        os.path.join(run_dir, "config.json"),
        {"agent": agent_name, "env": env_name, "run_id": run_id, "config": config.to_dict(),
         "train": dataclasses.asdict(settings), "dataset": {**dataset.summary(), "fingerprint": dataset.fingerprint()},
         "val_dataset": ({**val_dataset.summary(), "fingerprint": val_dataset.fingerprint()}
                         if val_dataset is not None else None)},
    )
    logger = RunLogger(run_dir, ("metrics", "eval"), start_step, logging,
                       config={"agent": agent_name, "env": env_name, **config.to_dict(),
                               **dataclasses.asdict(settings)})

    data = jax.device_put(dataset.training_arrays())
    val_data = jax.device_put(val_dataset.training_arrays()) if val_dataset is not None else None
    data_key = stream_key(settings.seed, "data")
    val_key = stream_key(settings.seed, "val")
    eval_envs = None

    warning = cpu_warning(config, settings.steps)
    if warning and start_step < settings.steps:
        log(warning)

    from tqdm import tqdm

    bar = tqdm(total=settings.steps, initial=start_step, desc=f"train {agent_name}", unit="upd",
               disable=not settings.progress, dynamic_ncols=True)
    step = start_step
    t_start = time.time()
    compiled = {}  # chunk size -> executable; the first is compiled apart from running, to time it honestly
    while step < settings.steps:
        n = min(settings.log_every, settings.steps - step)
        t_chunk = time.time()
        if step == start_step:
            compiled[n] = train_chunk.lower(agent, data, data_key, n, config.batch_size).compile()
            t_compile = time.time() - t_chunk
            t_chunk = time.time()
        if n in compiled:
            agent, info = compiled[n](agent, data, data_key)
        else:
            agent, info = train_chunk(agent, data, data_key, n, config.batch_size)
        info = {k: float(v) for k, v in jax.device_get(info).items()}
        if step == start_step:
            per_update = (time.time() - t_chunk) / n
            bar.write(f"training {agent_name} on {env_name}: {settings.steps - step} updates, networks "
                      f"{network_label(config)}, batch {config.batch_size}, device {jax.devices()[0].platform} "
                      f"({jax.devices()[0].device_kind}); compiled in {t_compile:.1f} s, first {n} updates "
                      f"{per_update * 1e3:.2f} ms each -> about {fmt_seconds(per_update * (settings.steps - step))} "
                      "of training, evaluation not included")
        step += n
        bar.update(n)
        if not all(np.isfinite(v) for v in info.values()):
            bad = sorted(k for k, v in info.items() if not np.isfinite(v))
            raise FloatingPointError(f"non-finite training metrics {bad} at step {step}; lower config.lr or check data")
        row = {"step": step, "time": round(time.time() - t_start, 3), **info}
        if val_data is not None:
            val = validation_metrics(agent, val_data, jax.random.fold_in(val_key, step), config.batch_size)
            row.update({f"val/{k}": float(v) for k, v in jax.device_get(val).items()})
        logger.log("metrics", row)
        bar.set_postfix(q_loss=f"{info.get('q_loss', float('nan')):.3g}", refresh=False)
        periodic = settings.eval_every and step % settings.eval_every == 0
        if settings.eval_episodes and (periodic or step == settings.steps):
            eval_envs = eval_envs or make_eval_envs(env_name, settings.eval_episodes)
            res = evaluate_agent(agent, env_name, settings.eval_episodes, seed=settings.seed, envs=eval_envs)
            logger.log("eval", {"step": step, **res})
            succ = "n/a" if res["success"] is None else f"{res['success']:.3f}"
            bar.write(f"step {step}: success {succ} return {res['return']:.2f} "
                      f"(omega {res['omega']}, K {res['num_candidates']}{selection_note(res)}, "
                      f"{res['episodes']} episodes)")
        if step % settings.save_every == 0 or step == settings.steps:
            save_checkpoint(run_dir, step, settings.keep_checkpoints, run_id,
                            lambda path: agent.save(path, run_id=run_id, dataset_path=dataset.name,
                                                    **{k: v for k, v in facts.items() if not k.startswith("config.")
                                                       and k != "agent"}))
    bar.close()
    logger.close()
    return agent


def selection_note(row: dict) -> str:
    """', tilt' / ', argmax' after the K of an evaluation line (nothing at K = 1)."""
    return f", {row['selection']}" if row.get("selection") else ""
