"""The offline training loop, one for every run: a single run is a population of one member.

`train` (`dipole.train`: a run, or a population over seeds or tasks) and `train_population` (given members) are the
entry points; `dipole train`, the quickstart and `dipole bench` call them.

`run_offline` trains the members (task, seed) of one agent as one compiled program (`population_chunk`: a
`jax.vmap` over members of the `lax.scan` of updates, one member on the unbatched path a single run always had, so
its numbers are those of earlier releases bit for bit). It owns what every run shares: the resume check, the memory
check, the progress bar with its first-chunk timing and ETA, metrics and validation rows, evaluations, atomic
checkpoints, and closing the evaluation environments. What differs is only the face a run shows: a single run
(`Solo`) keeps its own files as before (one agent's checkpoints, metrics rows without task and seed columns, its
config.json), a population writes every member in one checkpoint and one row per member.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import create_agent, get_agent, restore
from dipole.data.dataset import Dataset
from dipole.data.stacked import PopulationData, as_population_data
from dipole.errors import DivergedError, UsageError
from dipole.runfolder import check_resume, check_run_id, new_run_id, open_run_folder, save_checkpoint
from dipole.runners import population as P
from dipole.runners.devices import (
    check_population_fits,
    format_bytes,
    member_mesh,
    pad_members,
    place_members,
    population_memory,
)
from dipole.runners.evaluation import evaluate_agent, make_eval_envs
from dipole.runners.logging import LogSettings, RunLogger
from dipole.runners.offline import TrainSettings, cpu_warning, fmt_seconds, network_label, selection_note
from dipole.runners.population import (
    Member,
    Population,
    _describe,
    _eval_line,
    create_members,
    evaluate_population,
    members_of,
    population_eval_envs,
    population_validation,
    save_population,
    stack,
    take,
)
from dipole.seeding import stream_key
from dipole.storage import atomic_write_json, list_checkpoints, read_checkpoint, resolve_checkpoint

FINETUNE_FORMAT = 1  # the format of a fine-tune checkpoint's own fields (dipole.runners.online)


@dataclasses.dataclass
class Solo:
    """A single run's face: its environment and datasets as the caller gave them (names, summaries, fingerprints
    recorded in config.json and in every checkpoint)."""

    env_name: str
    dataset: Dataset
    val_dataset: Dataset | None = None


def resume_facts(agent_name: str, config, members: list[Member], data: PopulationData,
                 val: PopulationData | None, solo: Solo | None) -> dict:
    """Everything that changes a run's results, as recorded in its checkpoints and checked on resume."""
    if solo is not None:
        return {"agent": agent_name, "env": solo.env_name, "seed": members[0].seed,
                "dataset_fingerprint": solo.dataset.fingerprint(),
                "val_dataset_fingerprint": solo.val_dataset.fingerprint() if solo.val_dataset is not None else None,
                **{f"config.{k}": v for k, v in config.to_dict().items()}}
    return {"agent": agent_name, "members": [[m.task, m.seed] for m in members],
            "dataset_fingerprints": dict(zip(data.tasks, data.fingerprints)),
            "val_dataset_fingerprints": dict(zip(val.tasks, val.fingerprints)) if val is not None else None,
            **{f"config.{k}": v for k, v in config.to_dict().items()}}


def resume_point(run_dir: str, facts: dict, steps: int | None, log, kind: str = "single",
                 fresh: str = "starting from scratch"):
    """The newest valid checkpoint of `run_dir` to resume from -> (header, raw state, its step, run id, path), or
    None (said, with `fresh`) when the folder has none; the one resume check of every loop. `kind` is the run that
    resumes: "single", "population" or "finetune". Refused: a checkpoint of another kind (a population's for a
    single run, an offline one for a fine-tune, ...), one whose recorded `facts` (agent, data, seed or members,
    config, fine-tune settings) differ, another run's, or one past `steps`."""
    from dipole.storage import CheckpointError

    if not list_checkpoints(run_dir):
        log(f"--resume: no checkpoint in {run_dir}; {fresh}")
        return None
    path = resolve_checkpoint(run_dir, log=log)
    header, state = read_checkpoint(path)
    finetune = header.get("finetune")
    if kind == "finetune":
        if finetune is None or finetune.get("format") != FINETUNE_FORMAT:
            raise CheckpointError(f"{path} is not a fine-tuning checkpoint; use a new --run-dir for the fine-tune")
    elif finetune is not None:
        raise UsageError(f"--resume: {path} is a fine-tune's checkpoint; resume it with `dipole finetune --resume` "
                         "and the same --run-dir, or choose another folder")
    elif ("members" in header) != (kind == "population"):
        raise UsageError(f"--resume: {path} is a population's checkpoint; resume it with `dipole train --seeds`"
                         if kind == "single" else
                         f"--resume: {path} is a single run's checkpoint, not a population's; resume it with "
                         "`dipole train` without --seeds, or choose another folder")
    saved_config = get_agent(header["agent"])[1].saved_fields(header["config"])  # e.g. an older DIPOLE: iql form
    saved = {"agent": header["agent"], **{k: header[k] for k in facts if k in header},
             **({k: v for k, v in finetune.items() if k in facts} if kind == "finetune" else {}),
             **{f"config.{k}": v for k, v in saved_config.items()}}
    check_resume(path, saved, facts)
    check_run_id(run_dir, path, header)
    step = int(finetune["env_step"] if kind == "finetune" else header["step"])
    if steps is not None and step > steps:
        raise UsageError(f"--resume: {path} is at step {step}, past --steps {steps}; pass --steps {step} or more")
    if kind != "finetune":
        log(f"resuming {'the population ' if kind == 'population' else ''}from {path} at step {step}")
    return header, state, step, header.get("run_id") or new_run_id(), path


def run_offline(run_dir, members: list[Member], data: PopulationData, agent_name, agent_cls, config, settings,
                resume: bool, log, val_data: PopulationData | None, logging, memory_free: int | None = None,
                solo: Solo | None = None):
    """Train `members` offline in the (already locked) `run_dir` -> the trained agent (`solo`) or Population."""
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    facts = resume_facts(agent_name, config, members, data, val_data, solo)
    start_step, run_id, state = 0, new_run_id(), None
    found = (resume_point(run_dir, facts, settings.steps, log, "single" if solo is not None else "population")
             if resume else None)
    if found is not None:
        header, state, start_step, run_id, _ = found
    ex_obs, ex_act = data.shared["observations"][:1], data.shared["actions"][:1]
    one = create_agent(agent_cls, members[0].seed, ex_obs, ex_act, config)
    one.check_sampling()  # a bad omega or K in the config fails now, not at the first evaluation
    mesh, padded = member_mesh(len(members))
    devices = 1 if mesh is None else mesh.size
    memory = population_memory(one, padded, data.nbytes(), config.batch_size, devices,
                               val_data.nbytes() if val_data is not None else 0)
    check_population_fits(memory, memory_free)  # before the members are made, let alone compiled
    if solo is not None:
        agents = stack([restore(header, state) if state is not None else one])
    else:
        agents = create_members(agent_name, config, members, ex_obs, ex_act)
        if state is not None:
            from flax.serialization import from_state_dict

            agents = from_state_dict(agents, state["agent"])

    settings_dict = dataclasses.asdict(settings)
    if solo is not None:
        atomic_write_json(os.path.join(run_dir, "config.json"), {
            "agent": agent_name, "env": solo.env_name, "run_id": run_id, "config": config.to_dict(),
            "train": settings_dict, "dataset": {**solo.dataset.summary(), "fingerprint": solo.dataset.fingerprint()},
            "val_dataset": ({**solo.val_dataset.summary(), "fingerprint": solo.val_dataset.fingerprint()}
                            if solo.val_dataset is not None else None)})
        logged = {"agent": agent_name, "env": solo.env_name}
    else:
        atomic_write_json(os.path.join(run_dir, "config.json"), {
            "agent": agent_name, "run_id": run_id, "members": [dataclasses.asdict(m) for m in members],
            "config": config.to_dict(), "train": settings_dict, "memory": memory,
            "datasets": {t: {**s, "fingerprint": f, "path": n}
                         for t, s, f, n in zip(data.tasks, data.summaries, data.fingerprints, data.names)}})
        logged = {"agent": agent_name, "members": len(members)}
    logger = RunLogger(run_dir, ("metrics", "eval"), start_step, logging,
                       config={**logged, **config.to_dict(), **settings_dict})

    task_idx = jnp.asarray(np.array([data.task_index(m.task) for m in members], np.int32))
    data_keys = jnp.stack([stream_key(m.seed, "data") for m in members])
    val_keys = jnp.stack([stream_key(m.seed, "val") for m in members])
    dev_data = place_members(data.arrays(), mesh, split=False)
    dev_val = place_members(val_data.arrays(), mesh, split=False) if val_data is not None else None
    val_idx = (jnp.asarray(np.array([val_data.task_index(m.task) for m in members], np.int32))
               if val_data is not None else None)
    run_agents = place_members(pad_members(agents, padded), mesh, split=True)
    run_keys = place_members(pad_members(data_keys, padded), mesh, split=True)
    run_tasks = place_members(pad_members(task_idx, padded), mesh, split=True)
    real = np.arange(len(members))

    warning = cpu_warning(config, settings.steps)
    if warning and start_step < settings.steps:
        log(warning)
    from tqdm import tqdm

    desc = f"train {agent_name}" + ("" if solo is not None else f" x{len(members)}")
    bar = tqdm(total=settings.steps, initial=start_step, desc=desc, unit="upd", disable=not settings.progress,
               dynamic_ncols=True)
    step, t_start, compiled, eval_envs = start_step, time.time(), {}, None
    population = Population(agents, members)
    try:
        while step < settings.steps:
            n = min(settings.log_every, settings.steps - step)
            t_chunk = time.time()
            if n not in compiled:  # compiled apart from running, to time the first chunk honestly
                compiled[n] = P.population_chunk.lower(run_agents, dev_data, run_keys, run_tasks, n,
                                                     config.batch_size).compile()
                t_compile = time.time() - t_chunk
                t_chunk = time.time()
            run_agents, info = compiled[n](run_agents, dev_data, run_keys, run_tasks)
            info = {k: np.asarray(v)[real] for k, v in jax.device_get(info).items()}
            if step == start_step:
                per_update = (time.time() - t_chunk) / n
                bar.write(_first_line(agent_name, members, config, memory, devices, solo, settings.steps - step,
                                      t_compile, n, per_update))
            step += n
            bar.update(n)
            _check_finite(info, members, step, solo)
            periodic = settings.eval_every and step % settings.eval_every == 0
            evaluate = settings.eval_episodes and (periodic or step == settings.steps)
            save = step % settings.save_every == 0 or step == settings.steps
            if dev_val is not None or evaluate or save:  # the real members, without the padding
                population = Population(take(run_agents, real), members)
            val = None
            if dev_val is not None:
                keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(val_keys, step)
                val = jax.device_get(population_validation(population.agents, dev_val, keys, val_idx,
                                                           config.batch_size))
            elapsed = round(time.time() - t_start, 3)
            for i, m in enumerate(members):
                row = {"step": step, **({} if solo is not None else {"task": m.task, "seed": m.seed}),
                       "time": elapsed, **{k: float(v[i]) for k, v in info.items()}}
                if val is not None:
                    row.update({f"val/{k}": float(v[i]) for k, v in val.items()})
                logger.log("metrics", row, tag=None if solo is not None else f"{m.task}/seed{m.seed}")
            # the critic's loss, or for an agent without a critic (BC) its own loss
            shown = "q_loss" if "q_loss" in info else next((k for k in sorted(info) if k.endswith("_loss")), None)
            if shown:
                bar.set_postfix({shown: f"{np.mean(info[shown]):.3g}"}, refresh=False)
            if evaluate:
                eval_envs = _evaluate(population, settings, eval_envs, logger, bar, step, solo)
            if save and not settings.progress:  # no bar (a Ray worker, a quiet caller): a line per checkpoint
                rate = (time.time() - t_start) / (step - start_step)
                log(f"{desc}: step {step}/{settings.steps}, {fmt_seconds(time.time() - t_start)} elapsed, "
                    f"ETA {fmt_seconds(rate * (settings.steps - step))}")
            if save:
                _save(run_dir, population, step, settings, run_id, facts, solo)
    finally:
        bar.close()
        logger.close()
        for envs in eval_envs or []:
            for e in envs:
                e.close()
    return population.member(0) if solo is not None else population


def _first_line(agent_name, members, config, memory, devices, solo, remaining, t_compile, n, per_update) -> str:
    device = jax.devices()[0]
    timing = (f"compiled in {t_compile:.1f} s, first {n} updates {per_update * 1e3:.2f} ms each"
              + ("" if solo is not None else " for all members")
              + f" -> about {fmt_seconds(per_update * remaining)} of training, evaluation not included")
    if solo is not None:
        return (f"training {agent_name} on {solo.env_name}: {remaining} updates, networks {network_label(config)}, "
                f"batch {config.batch_size}, device {device.platform} ({device.device_kind}); {timing}")
    return (f"training a population of {len(members)} {agent_name} agents ({_describe(members)}): {remaining} "
            f"updates each, networks {network_label(config)}, batch {config.batch_size}, {devices} {device.platform}"
            f" device(s) ({device.device_kind}), memory about {format_bytes(memory['total_bytes'])}; {timing}")


def _check_finite(info: dict, members, step: int, solo) -> None:
    bad = sorted({(members[i].label(), k) for k, v in info.items() for i in np.nonzero(~np.isfinite(v))[0]})
    if not bad:
        return
    if solo is not None:
        raise DivergedError(f"non-finite training metrics {sorted({k for _, k in bad})} at step {step}; lower "
                                 "config.lr or check data")
    raise DivergedError(f"non-finite training metrics at step {step}: {bad[:4]}; lower config.lr or check data")


def _evaluate(population: Population, settings, eval_envs, logger, bar, step: int, solo):
    """Evaluate every member with the run's seed(s); log eval.csv rows and one line. -> the environments, kept."""
    if solo is not None:
        eval_envs = eval_envs or [make_eval_envs(solo.env_name, settings.eval_episodes)]
        res = evaluate_agent(population.member(0), solo.env_name, settings.eval_episodes,
                             seed=population.members[0].seed, envs=eval_envs[0])
        logger.log("eval", {"step": step, **res})
        succ = "n/a" if res["success"] is None else f"{res['success']:.3f}"
        bar.write(f"step {step}: success {succ} return {res['return']:.2f} (omega {res['omega']}, K "
                  f"{res['num_candidates']}{selection_note(res)}, {res['episodes']} episodes)")
        return eval_envs
    eval_envs = eval_envs or population_eval_envs(population, settings.eval_episodes)
    rows = evaluate_population(population, settings.eval_episodes, envs=eval_envs)
    for m, res in zip(population.members, rows):
        logger.log("eval", {"step": step, "task": m.task, "seed": m.seed, **res}, tag=f"{m.task}/seed{m.seed}")
    bar.write(f"step {step}: " + _eval_line(population.members, rows))
    return eval_envs


def _save(run_dir, population: Population, step: int, settings, run_id, facts: dict, solo) -> None:
    header = {k: v for k, v in facts.items() if not k.startswith("config.") and k != "agent"}
    if solo is not None:
        agent = population.member(0)
        save_checkpoint(run_dir, step, settings.keep_checkpoints, run_id,
                        lambda path: agent.save(path, run_id=run_id, dataset_path=solo.dataset.name, **header))
    else:
        save_checkpoint(run_dir, step, settings.keep_checkpoints, run_id,
                        lambda path: save_population(path, population, run_id=run_id, **header))


# ---------------------------------------------------------------------------------------------- entry points
def train(run_dir: str, env_name, dataset, agent_name: str = "dipole", config=None,
          settings: TrainSettings | None = None, resume: bool = False, log=print, val_dataset=None,
          logging: LogSettings | None = None, overwrite: bool = False, seeds: list[int] | None = None):
    """Train offline (`dipole.train`): one agent on task `env_name` from `dataset`, evaluated on it every
    `eval_every` updates and at the end -> the agent; or a population when `seeds` is a list or `env_name` a list of
    tasks that share observations and actions (`dataset`, `val_dataset`: one Dataset per task or a
    PopulationData) -> a `Population` whose `member(i)` equals that (task, seed) trained alone.

    The run folder is this process's alone while it trains (a second process is refused). A folder holding an
    earlier run is refused unless `resume` (continue it: seed, data and config must match) or `overwrite` (delete
    it). `val_dataset` (e.g. OGBench's `-val` split): the agent's losses on it are logged every `log_every` updates
    as `val/...` columns of metrics.csv.
    """
    settings = settings or TrainSettings()
    if seeds is not None or not isinstance(env_name, str):
        tasks = [env_name] if isinstance(env_name, str) else list(env_name)
        data = as_population_data(tasks, dataset)
        val = as_population_data(tasks, val_dataset) if val_dataset is not None else None
        return train_population(run_dir, members_of(tasks, [settings.seed] if seeds is None else seeds), data,
                                agent_name, config, settings, resume, log, val, logging, overwrite)
    agent_cls, config_cls = get_agent(agent_name)
    config = config or config_cls()
    agent_cls.check_dataset(config, dataset)
    data = PopulationData([env_name], [dataset])
    val = PopulationData([env_name], [val_dataset]) if val_dataset is not None else None
    with open_run_folder(run_dir, resume, overwrite, log):
        return run_offline(run_dir, [Member(env_name, settings.seed)], data, agent_name, agent_cls, config, settings,
                           resume, log, val, logging, solo=Solo(env_name, dataset, val_dataset))


def train_population(
    run_dir: str,
    members: list[Member],
    data: PopulationData,
    agent_name: str = "dipole",
    config=None,
    settings: TrainSettings | None = None,
    resume: bool = False,
    log=print,
    val_data: PopulationData | None = None,
    logging: LogSettings | None = None,
    overwrite: bool = False,
    memory_free: int | None = None,
) -> Population:
    """Train every member (task, seed) of a population offline as one compiled program; evaluate them together
    every `eval_every` updates and at the end. `settings.seed` is not used: each member has its own.

    The run folder holds the population's checkpoints (all members in one file, written atomically), metrics.csv
    and eval.csv with one row per member and step, and config.json; `resume` continues it exactly after a kill.
    Returns the `Population`.
    """
    settings = settings or TrainSettings()
    agent_cls, config_cls = get_agent(agent_name)
    config = config or config_cls()
    members = [m if isinstance(m, Member) else Member(*m) for m in members]
    if not members:
        raise UsageError("a population needs at least one member")
    if len(set(members)) != len(members):
        raise UsageError(f"members of a population must differ; got {[m.label() for m in members]}")
    unknown = sorted({m.task for m in members} - set(data.tasks))
    if unknown:
        raise UsageError(f"member task(s) {unknown} have no reward column in the population data (tasks "
                         f"{data.tasks})")
    agent_cls.check_dataset(config, data.dataset(data.tasks[0]))
    with open_run_folder(run_dir, resume, overwrite, log):
        return run_offline(run_dir, members, data, agent_name, agent_cls, config, settings, resume, log, val_data,
                           logging, memory_free)
