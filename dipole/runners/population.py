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

Memory: the shared arrays once per device, plus per member its state (parameters, optimiser moments, target
networks) and the working memory of one update (activations of every network for one batch); see
`population_memory`. A population that will not fit is refused before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import math
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import get_agent
from dipole.data.dataset import Dataset, DatasetError
from dipole.errors import UsageError
from dipole.runners.evaluation import (
    MAX_EVAL_ENVS,
    EvalWorkers,
    make_eval_envs,
    run_group_episodes,
)
from dipole.runners.offline import selection_note
from dipole.storage import list_checkpoints, read_checkpoint, resolve_checkpoint, write_checkpoint

SHARED_KEYS = ("observations", "actions", "next_observations")
OPTIONAL_SHARED_KEYS = ("term_rewards",)  # kept when the first task's data has them (dipole-terms' reward per term)
MEMORY_HEADROOM = 0.9  # a population may use at most this share of the device memory that is free


# ---------------------------------------------------------------------------------------------- data
class PopulationData:
    """One copy of the transitions the tasks share, with one reward and one mask column per task.

    Built from one `Dataset` per task (each relabelled by its own loader, e.g. OGBench's); their observations,
    actions and next observations (and per-term rewards, when the data has them) must be identical, which is
    checked. `arrays()` gives what the compiled update reads: observations, actions, next_observations (N, .),
    term_rewards (N, K) when present, and rewards, masks (N, T).
    """

    def __init__(self, tasks: list[str], datasets: list[Dataset]):
        if not tasks or len(tasks) != len(datasets):
            raise UsageError(f"a population needs one dataset per task; got {len(tasks)} tasks and "
                             f"{len(datasets)} datasets")
        if len(set(tasks)) != len(tasks):
            raise UsageError(f"tasks of a population must differ; got {tasks}")
        self.tasks = list(tasks)
        first = datasets[0]
        for task, ds in zip(tasks[1:], datasets[1:]):
            _check_shared(ds, first, task, tasks[0])
        self.shared = {k: first[k] for k in shared_keys(first)}
        self.rewards = np.stack([ds["rewards"] for ds in datasets], axis=1)
        self.masks = np.stack([ds["masks"] for ds in datasets], axis=1)
        self.fingerprints = [ds.fingerprint() for ds in datasets]
        self.term_names = getattr(first, "term_names", None)
        self.names = [ds.name for ds in datasets]
        self.summaries = [ds.summary() for ds in datasets]

    def __len__(self) -> int:
        return len(self.shared["observations"])

    def arrays(self) -> dict:
        return {**self.shared, "rewards": self.rewards, "masks": self.masks}

    def task_index(self, task: str) -> int:
        return self.tasks.index(task)

    def nbytes(self) -> int:
        return sum(int(v.nbytes) for v in self.arrays().values())

    def dataset(self, task: str) -> Dataset:
        """The single-task Dataset of `task` (as its loader made it)."""
        i = self.task_index(task)
        return Dataset({**self.shared, "rewards": self.rewards[:, i], "masks": self.masks[:, i]}, name=self.names[i],
                       term_names=self.term_names)


def shared_keys(ds) -> tuple:
    """The arrays every task of a population shares with the first task `ds`: observations, actions, next
    observations, and per-term rewards when it has them."""
    arrays = getattr(ds, "arrays", {})
    return SHARED_KEYS + tuple(k for k in OPTIONAL_SHARED_KEYS if k in arrays)


def _check_shared(ds, first, task: str, first_task: str) -> None:
    """Refuse a task whose observations, actions or next observations (or per-term rewards) differ from the first
    task's."""
    for key in shared_keys(first):
        if key not in getattr(ds, "arrays", {}):
            raise DatasetError(f"{ds.name} ({task}): has no field '{key}' but {first.name} ({first_task}) has; the "
                               "tasks of a population must carry the same fields")
        if ds[key] is first[key]:  # a task reduced to its columns already holds the first task's arrays
            continue
        if ds[key].shape != first[key].shape or not np.array_equal(ds[key], first[key]):
            raise DatasetError(f"{ds.name} ({task}): field '{key}' differs from {first.name} ({first_task}); the "
                               "tasks of a population must share observations, actions and next observations "
                               "(relabel one dataset per task), so train them separately")


class _Columns:
    """A task's dataset reduced to its reward and mask columns once its shared arrays are checked equal to the
    first task's (so only one copy of them is kept)."""

    def __init__(self, ds: Dataset, first: Dataset, task: str, first_task: str):
        _check_shared(ds, first, task, first_task)
        self.name = ds.name
        self._fingerprint = ds.fingerprint()
        self._summary = ds.summary()
        self.arrays = {"rewards": ds["rewards"], "masks": ds["masks"], **{k: first[k] for k in shared_keys(first)}}

    def __getitem__(self, key):
        return self.arrays[key]

    def fingerprint(self):
        return self._fingerprint

    def summary(self):
        return self._summary


def as_population_data(tasks: list[str], datasets) -> PopulationData:
    """A PopulationData as is, or one built from a Dataset (one task) or a list of Datasets (one per task)."""
    if isinstance(datasets, PopulationData):
        if datasets.tasks != list(tasks):
            raise UsageError(f"the population data holds tasks {datasets.tasks}, not {list(tasks)}")
        return datasets
    if isinstance(datasets, Dataset):
        datasets = [datasets]
    return PopulationData(list(tasks), list(datasets))


def load_population_data(tasks: list[str], load_one) -> tuple[PopulationData, PopulationData | None]:
    """`load_one(task) -> (train Dataset, validation Dataset or None)`, called task by task; only the first task's
    shared arrays are kept (each later task's are checked equal to them, then dropped)."""
    first, first_val = load_one(tasks[0])
    rest, rest_val = [], []
    for task in tasks[1:]:
        ds, val = load_one(task)
        rest.append(_Columns(ds, first, task, tasks[0]))
        if (val is None) != (first_val is None):
            raise UsageError(f"{task} {'has no' if val is None else 'has a'} validation split but {tasks[0]} "
                             f"{'has one' if val is None else 'has none'}; a population needs the same for every task")
        if first_val is not None:
            rest_val.append(_Columns(val, first_val, task, tasks[0]))
    data = PopulationData(tasks, [first, *rest])
    return data, (PopulationData(tasks, [first_val, *rest_val]) if first_val is not None else None)


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


@jax.jit
def population_act(agents, obs, keys, sampling):
    """Every member acts on its own observations (M, B, D) with its own key (M, 2) under one resolved sampling."""
    return jax.vmap(lambda ag, o, k: ag.act(o, k, sampling))(agents, obs, keys)


def create_members(agent_name: str, config, members: list[Member], ex_obs, ex_actions):
    """Each member's agent exactly as a single run of its seed creates it, stacked."""
    agent_cls, _ = get_agent(agent_name)
    return stack([agent_cls.create(m.seed, ex_obs, ex_actions, config) for m in members])


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


# ---------------------------------------------------------------------------------------------- devices, memory
def device_memory_free(device=None) -> int:
    """Bytes free on `device` (default: JAX's first device): the accelerator's limit minus what is in use, or the
    host's available memory for CPU devices."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _dense_widths(params) -> int:
    """Sum of the output widths of every dense layer in a parameter tree (ensemble copies counted)."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if getattr(path[-1], "key", None) == "kernel" and leaf.ndim >= 2:
            total += int(np.prod(leaf.shape)) // int(leaf.shape[-2])
    return total


def population_memory(agent, members: int, data_bytes: int, batch_size: int, devices: int = 1,
                      val_bytes: int = 0) -> dict:
    """Bytes a population needs: the data once per device, and per member its state plus one update's working
    memory. `agent` is one member (unstacked).

    Working memory is estimated as batch x 4 bytes x the widths of every dense layer x (passes per update) x 4
    (activations kept for the gradient, their gradients, pre-activations, normalisation): the update runs each
    network on the batch and on next observations, and flow agents run their velocity network `flow_steps` times
    when they distil or sample inside the loss.
    """
    state = sum(int(x.nbytes) for x in jax.tree_util.tree_leaves(agent))
    widths = _dense_widths(agent.params)
    passes = 2 + (int(getattr(agent.config, "flow_steps", 1)) if agent.config.agent in ("fql",) else 0)
    work = batch_size * 4 * widths * passes * 4
    per_member = state + work
    total = (data_bytes + val_bytes) * devices + per_member * members
    per_device = data_bytes + val_bytes + per_member * math.ceil(members / devices)
    return {"data_bytes": int(data_bytes + val_bytes), "devices": int(devices), "state_bytes": int(state),
            "work_bytes": int(work), "per_member_bytes": int(per_member), "members": int(members),
            "total_bytes": int(total), "per_device_bytes": int(per_device)}


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**28 else f"{b / 2**20:.1f} MiB"


def check_population_fits(memory: dict, free: int | None = None) -> None:
    """Refuse, before compiling, a population whose estimated memory on one device (the data, and that device's
    share of the members) exceeds 90% of what the device has free."""
    free = device_memory_free() if free is None else free
    devices = memory["devices"]
    if memory["per_device_bytes"] > MEMORY_HEADROOM * free:
        fit = int((MEMORY_HEADROOM * free - memory["data_bytes"]) // memory["per_member_bytes"]) * devices
        where = "the device has" if devices == 1 else f"each of the {devices} devices has"
        what = "a run" if memory["members"] == 1 else f"a population of {memory['members']} members"
        raise UsageError(
            f"{what} needs about {_gib(memory['per_device_bytes'])} per device "
            f"(data {_gib(memory['data_bytes'])} + {math.ceil(memory['members'] / devices)} x "
            f"{_gib(memory['per_member_bytes'])} per member) but {where} {_gib(free)} free; "
            + (f"train at most {fit} members at a time (fewer seeds or tasks; `dipole bench --max-population "
               f"{fit}`) or smaller networks (--preset small)" if fit >= 1 else
               "not even one member fits beside the data: use smaller networks (--preset small)" if
               memory["data_bytes"] < MEMORY_HEADROOM * free else
               "the data alone does not fit: use a smaller dataset or smaller networks (--preset small)"))


def use_cpu_cores() -> None:
    """Give JAX one CPU device per core (unless the user chose a number), so a population trained on the CPU is
    split over the cores; a single run uses the first device as before. Only possible before JAX starts; the CLI
    calls it first thing. From Python: `jax.config.update("jax_num_cpu_devices", os.cpu_count())` before any JAX
    work, or set JAX_NUM_CPU_DEVICES."""
    if "JAX_NUM_CPU_DEVICES" in os.environ or "host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        jax.config.update("jax_num_cpu_devices", cores or 1)
    except RuntimeError:  # JAX's backends already started (e.g. main() called twice in one process)
        pass


def member_mesh(num_members: int):
    """(mesh or None, padded size): members are split over min(#devices, #members) devices of the default backend,
    padded to a multiple of that number."""
    devices = jax.devices()
    n = min(len(devices), num_members)
    if n <= 1:
        return None, num_members
    return jax.sharding.Mesh(np.array(devices[:n]), ("members",)), math.ceil(num_members / n) * n


def _place(tree, mesh, split: bool):
    if mesh is None:
        return jax.device_put(tree)
    spec = jax.sharding.PartitionSpec("members") if split else jax.sharding.PartitionSpec()
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, spec))


def _pad(tree, padded: int):
    n = jax.tree_util.tree_leaves(tree)[0].shape[0]
    if padded == n:
        return tree
    return jax.tree_util.tree_map(lambda x: jnp.concatenate([x, jnp.repeat(x[:1], padded - n, axis=0)]), tree)


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
