"""Environment registry: a name -> a gymnasium-style env with actions in [-1, 1] and `info['success']` where defined.

`dmc-DOMAIN-TASK` (DeepMind Control), `highway-fast-v0[:weights]` (driving), and OGBench single-task names.
"""

from __future__ import annotations

from typing import Callable

_FACTORIES: dict[str, Callable] = {}


def register(prefix: str, factory: Callable) -> None:
    """Names starting with `prefix` are made by `factory(name)`."""
    _FACTORIES[prefix] = factory


def _dmc(name: str):
    from dipole.envs.dmc import make_dmc_env

    return make_dmc_env(name)


def _highway(name: str):
    from dipole.envs.highway import make_highway_env

    return make_highway_env(name)


register("dmc-", _dmc)
register("highway-", _highway)


def make_env(name: str):
    for prefix, factory in _FACTORIES.items():
        if name.startswith(prefix):
            return factory(name)
    from dipole.envs.ogbench import make_ogbench_env

    return make_ogbench_env(name)
