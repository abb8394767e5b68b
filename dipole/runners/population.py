"""Populations: many (task, seed) members of one agent trained as one compiled program.

OGBench's five single tasks of a category (and the tasks of a DMC domain) share observations and actions; only the
rewards and masks differ. A population keeps one copy of the shared arrays with one reward and one mask column per
task (`PopulationData`), stacks its members' agents along a leading axis, and updates all of them in one compiled
chunk: `jax.vmap` over members of the same `lax.scan` of updates a single run uses, each member drawing its own
batches inside the program from its own key. Evaluation steps every member's environments together, with one
policy call per step for all of them.

A member trains exactly as the same (task, seed) trained alone by `dipole.runners.loop.train`: the same initial
parameters, the same batches (keys from the seed and the member's own step), the same updates, equal within float
tolerance. On several devices (GPUs, or CPU cores when JAX is given several CPU devices, as the CLI does) the
members are split across them; a population that does not divide evenly is padded with copies of its first member
whose results are dropped.

The shared data is `dipole.data.stacked.PopulationData`; devices and memory (the split over devices, the estimate,
the refusal of a population that will not fit) are `dipole.runners.devices`. Their names stay importable from here.
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import create_agent, get_agent
from dipole.data.stacked import (  # noqa: F401 (importable from here as before)
    OPTIONAL_SHARED_KEYS,
    SHARED_KEYS,
    PopulationData,
    as_population_data,
    load_population_data,
    shared_keys,
)
from dipole.errors import UsageError
from dipole.runners.devices import (  # noqa: F401 (importable from here as before)
    MEMORY_HEADROOM,
    check_population_fits,
    device_memory_free,
    member_mesh,
    pad_members,
    place_members,
    population_memory,
    use_cpu_cores,
)
from dipole.runners.evaluation import (
    MAX_EVAL_ENVS,
    EvalWorkers,
    make_eval_envs,
    run_group_episodes,
)
from dipole.runners.offline import selection_note
from dipole.storage import list_checkpoints, read_checkpoint, resolve_checkpoint, write_checkpoint


# ---------------------------------------------------------------------------------------------- members
@dataclasses.dataclass(frozen=True)
class Member:
    task: str
    seed: int

    def label(self) -> str:
        return f"{self.task} seed {self.seed}"


def members_of(tasks, seeds) -> list[Member]:
    """Every (task, seed) pair, task-major: [Member(t0, s0), Member(t0, s1), ..., Member(t1, s0), ...]."""
    return [Member(t, int(s)) for t in tasks for s in seeds]


def stack(agents: list):
    """Agents of one class and config -> one agent whose array leaves have a leading member axis."""
    treedef = jax.tree_util.tree_structure(agents[0])
    leaves = [jax.tree_util.tree_leaves(a) for a in agents]
    return jax.tree_util.tree_unflatten(treedef, [jnp.stack(x) for x in zip(*leaves)])


def unstack(agents, i: int):
    """Member `i` of a stacked agent, as an ordinary agent (sample, save, fine-tune it like any other)."""
    return jax.tree_util.tree_map(lambda x: x[i], agents)


def take(agents, idx):
    return jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], agents)


class Population:
    """Trained members of one agent: `agents` is a stacked agent (leading axis = member), `members[i]` its
    (task, seed). `member(i)` is an ordinary agent; `sample_actions` acts for every member in one call."""

    def __init__(self, agents, members: list[Member]):
        self.agents = agents
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def config(self):
        return self.agents.config

    def member(self, i: int):
        return unstack(self.agents, i)

    def index(self, task: str, seed: int) -> int:
        return self.members.index(Member(task, int(seed)))

    def sample_actions(self, obs, keys, omega: float | None = None, num_candidates: int | None = None,
                       selection: str | None = None, term_weights=None):
        """obs (M, B, D), keys (M, 2) -> actions (M, B, A), member m acting as `member(m).sample_actions` would
        (`term_weights` for agents with a weight per reward term, dipole-terms)."""
        sampling = self.agents.sampling(omega, num_candidates, selection, term_weights=term_weights)
        return population_act(self.agents, jnp.asarray(obs, jnp.float32), keys, sampling)


def population_act(agents, obs, keys, sampling):
    """Every member acts on its own observations (M, B, D) with its own key (M, 2) under one resolved sampling.

    Compiled once per (K, selection): omega and term weights are traced; the evaluation row the sampling carries
    (static, with their values) is left out of the compiled call."""
    return _population_act(agents, obs, keys, sampling.replace(row=()))


@jax.jit
def _population_act(agents, obs, keys, sampling):
    return jax.vmap(lambda ag, o, k: ag.act(o, k, sampling))(agents, obs, keys)


def create_members(agent_name: str, config, members: list[Member], ex_obs, ex_actions):
    """Each member's agent exactly as a single run of its seed creates it, stacked."""
    agent_cls, _ = get_agent(agent_name)
    return stack([create_agent(agent_cls, m.seed, ex_obs, ex_actions, config) for m in members])


# ---------------------------------------------------------------------------------------------- compiled chunks
@partial(jax.jit, static_argnames=("num_updates", "batch_size"))
def population_chunk(agents, data: dict, data_keys, task_idx, num_updates: int, batch_size: int):
    """`num_updates` updates of every member in one compiled call -> (agents, metrics (M,) averaged over the chunk).

    Member m draws batch rows from fold_in(data_keys[m], its step), as a single run does, and reads reward and mask
    column task_idx[m]."""
    size = data["observations"].shape[0]

    def member(agent, key, t):
        def one(agent, _):
            idx = jax.random.randint(jax.random.fold_in(key, agent.step), (batch_size,), 0, size)
            batch = {k: v[idx] for k, v in data.items() if k not in ("rewards", "masks")}
            batch["rewards"] = data["rewards"][idx, t]
            batch["masks"] = data["masks"][idx, t]
            return agent.update(batch)

        agent, infos = jax.lax.scan(one, agent, None, length=num_updates)
        return agent, jax.tree_util.tree_map(jnp.mean, infos)

    return _over_members(member, agents, data_keys, task_idx)


def _over_members(fn, agents, *per_member):
    """fn over the leading member axis: `jax.vmap`, or for a single member the unbatched program a single run has
    always compiled (so its numbers stay those of earlier releases bit for bit)."""
    if per_member[0].shape[0] == 1:
        out = fn(unstack(agents, 0), *(x[0] for x in per_member))
        return jax.tree_util.tree_map(lambda x: x[None], out)
    return jax.vmap(fn)(agents, *per_member)


@partial(jax.jit, static_argnames=("batch_size",))
def population_validation(agents, data: dict, keys, task_idx, batch_size: int):
    """Each member's losses on one batch of its task's held-out data (the agents are not changed)."""
    size = data["observations"].shape[0]

    def member(agent, key, t):
        idx = jax.random.randint(key, (batch_size,), 0, size)
        batch = {k: v[idx] for k, v in data.items() if k not in ("rewards", "masks")}
        batch["rewards"] = data["rewards"][idx, t]
        batch["masks"] = data["masks"][idx, t]
        return agent.update(batch)[1]

    return _over_members(member, agents, keys, task_idx)


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate_population(population: Population, episodes: int, omega=None, num_candidates=None,
                        envs: list | None = None, num_envs: int | None = None, selection=None,
                        term_weights=None) -> list[dict]:
    """Evaluate every member on its own task in one batched run -> one result per member (as `evaluate_agent`)."""
    agents = population.agents
    sampling = agents.sampling(omega, num_candidates, selection, term_weights=term_weights)
    envs = envs or population_eval_envs(population, episodes, num_envs)

    def act(obs, keys):
        return population_act(agents, jnp.asarray(obs), keys, sampling)

    rows = run_group_episodes(act, envs, episodes, [m.seed for m in population.members])
    return [{**r, **sampling.fields()} for r in rows]


MAX_POPULATION_EVAL_ENVS = 32  # environments a population's evaluation holds at once, over all its members


def population_eval_envs(population: Population, episodes: int, num_envs: int | None = None,
                         workers: int = 1) -> list[list] | EvalWorkers:
    """Each member's evaluation environments: as many as a single run of it uses (so its episodes match that run's),
    unless the population would then hold more than MAX_POPULATION_EVAL_ENVS at once (one OGBench manipulation
    environment holds about 200 MB): then fewer per member, which changes the draw of episodes, not their number.
    With `workers` > 1 (and more than one member) they live in that many processes, which step them in parallel
    (`EvalWorkers`: the same results; close them with `close_eval_envs`)."""
    per_member = num_envs or min(MAX_EVAL_ENVS, max(1, MAX_POPULATION_EVAL_ENVS // len(population.members)))
    if workers > 1 and len(population.members) > 1:
        return EvalWorkers([(m.task, min(episodes, per_member)) for m in population.members], workers)
    return [make_eval_envs(m.task, episodes, per_member) for m in population.members]


def _describe(members: list[Member]) -> str:
    tasks = sorted({m.task for m in members})
    seeds = sorted({m.seed for m in members})
    if len(tasks) * len(seeds) == len(members):
        return f"{len(tasks)} task(s) x {len(seeds)} seed(s)"
    return f"{len(members)} (task, seed) pairs"


def _eval_line(members, rows) -> str:
    by_task = {}
    for m, r in zip(members, rows):
        by_task.setdefault(m.task, []).append(r["success"] if r["success"] is not None else r["return"])
    metric = "success" if rows[0]["success"] is not None else "return"
    return f"{metric} " + ", ".join(f"{t.split('singletask-')[-1].removesuffix('-v0')} "
                                   f"{np.mean(v):.3g}" for t, v in by_task.items()) + \
        f" (mean over seeds; omega {rows[0]['omega']}, K {rows[0]['num_candidates']}{selection_note(rows[0])}, " \
        f"{rows[0]['episodes']} episodes)"


def save_population(path: str, population: Population, **header) -> str:
    """Write every member in one checkpoint file (atomically); `load_population(path)` reads it."""
    from dipole.version import __version__

    agents = population.agents
    head = {"agent": agents.config.agent, "config": agents.config.to_dict(), "obs_dim": int(agents.obs_dim),
            "action_dim": int(agents.action_dim), "step": int(np.max(np.asarray(agents.step))),
            "dipole_version": __version__, "members": [[m.task, m.seed] for m in population.members], **header}
    from flax.serialization import to_state_dict

    return write_checkpoint(path, head, jax.device_get(to_state_dict(agents)))


def load_population(path: str) -> tuple[Population, dict]:
    """A population checkpoint file, or the newest valid one in a population's run folder -> (Population, header)."""
    from flax.serialization import from_state_dict

    from dipole.storage import CheckpointError

    path = resolve_checkpoint(path)
    header, state = read_checkpoint(path)
    if "members" not in header:
        raise UsageError(f"{path} is a single agent's checkpoint, not a population's; load it with dipole.load")
    members = [Member(t, int(s)) for t, s in header["members"]]
    config = get_agent(header["agent"])[1].from_dict(header["config"])
    template = create_members(header["agent"], config, members, np.zeros((1, header["obs_dim"]), np.float32),
                              np.zeros((1, header["action_dim"]), np.float32))
    try:
        agents = from_state_dict(template, state["agent"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: population checkpoint does not match its header: {e}") from None
    return Population(agents, members), header


def export_members(population: Population, run_dir: str, data: PopulationData, path_of, val_data=None) -> list[str]:
    """Save every member as an ordinary single-agent checkpoint at `path_of(member)`, with the facts a single run
    records (env, seed, dataset and its fingerprint, the population's run id), so `dipole eval`, `dipole finetune`
    and `dipole.load` take it like any other."""
    run_id = None
    files = list_checkpoints(run_dir)
    if files:
        from dipole.storage import read_header

        run_id = read_header(files[-1]).get("run_id")
    paths = []
    for i, m in enumerate(population.members):
        t = data.task_index(m.task)
        path = path_of(m)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        population.member(i).save(path, run_id=run_id, env=m.task, seed=m.seed, dataset_path=data.names[t],
                                  dataset_fingerprint=data.fingerprints[t],
                                  val_dataset_fingerprint=(val_data.fingerprints[val_data.task_index(m.task)]
                                                           if val_data is not None else None),
                                  population=os.path.abspath(run_dir))
        paths.append(path)
    return paths
