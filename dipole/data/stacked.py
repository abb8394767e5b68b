"""The data of several tasks that share their transitions, kept once: `PopulationData`.

OGBench's five single tasks of a category (and the tasks of a DMC domain, or the reward weightings of one driving
dataset) share observations, actions and next observations; only the rewards and masks differ. `PopulationData`
keeps one copy of the shared arrays with one reward and one mask column per task, after checking that every task's
shared arrays equal the first task's.
"""

from __future__ import annotations

import numpy as np

from dipole.data.dataset import Dataset, DatasetError
from dipole.errors import UsageError

SHARED_KEYS = ("observations", "actions", "next_observations")
OPTIONAL_SHARED_KEYS = ("term_rewards",)  # kept when the first task's data has them (dipole-terms' reward per term)


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
