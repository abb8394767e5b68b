"""Dataset registry, beside the environment registry (`dipole.envs`): a task name -> its training data.

`load_dataset(name, path)` returns `(train Dataset, validation Dataset or None)` for every family: OGBench
single-task names (OGBench's own loader and relabelling; the `-val` file is the validation split), `dmc-DOMAIN-TASK`
(an exploration file of the domain, relabelled for the task from physics) and `highway-*[:weights]` (scripted-driver
data, rewards weighted from the stored terms). Every caller (`dipole train`, `dipole bench`, the quickstart) reads
data through it, and no loader leaves an environment open.
"""

from __future__ import annotations

from typing import Callable

from dipole.errors import UsageError

_LOADERS: dict[str, Callable] = {}


def register(prefix: str, loader: Callable) -> None:
    """Names starting with `prefix` are loaded by `loader(name, path, download, clip_actions) -> (train, val)`."""
    _LOADERS[prefix] = loader


def _dmc(name, path, download, clip_actions):
    from dipole.data.dmc import load_dmc

    if not path:
        domain = name.split("-")[1] if name.count("-") >= 2 else "DOMAIN"
        raise UsageError(f"{name} needs a dataset path (--dataset) to {domain}-explore.npz; make it with "
                         f"`dipole data dmc {domain}`")
    env, train = load_dmc(name, path, clip_actions=clip_actions)
    env.close()
    return train, None


def _highway(name, path, download, clip_actions):
    from dipole.data.highway import load_highway

    return load_highway(name, path, clip_actions=clip_actions), None


def _ogbench(name, path, download, clip_actions):
    from dipole.data.ogbench import load_ogbench

    env, train, val = load_ogbench(name, dataset_path=path, allow_download=download, clip_actions=clip_actions)
    env.close()
    return train, val


register("dmc-", _dmc)
register("highway-", _highway)


def load_dataset(name: str, path: str | None = None, download: bool = False, clip_actions: bool = False):
    """-> (train Dataset, validation Dataset or None) of task `name`, from `path` (the family's default place when
    None; OGBench may download only with `download`)."""
    for prefix, loader in _LOADERS.items():
        if name.startswith(prefix):
            return loader(name, path, download, clip_actions)
    return _ogbench(name, path, download, clip_actions)
