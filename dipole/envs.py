"""Environment registry: a name -> a gymnasium env with actions in [-1, 1] and `info['success']` where defined."""

from __future__ import annotations

from typing import Callable

_FACTORIES: dict[str, Callable] = {}


def register(prefix: str, factory: Callable) -> None:
    """Names starting with `prefix` are made by `factory(name)`."""
    _FACTORIES[prefix] = factory


def _dmc(name: str):
    from dipole.data.dmc import make_dmc_env

    return make_dmc_env(name)


def _highway(name: str):
    from dipole.highway import make_highway_env

    return make_highway_env(name)


register("dmc-", _dmc)
register("highway-", _highway)


def make_env(name: str):
    for prefix, factory in _FACTORIES.items():
        if name.startswith(prefix):
            return factory(name)
    from dipole.data.ogbench_data import parse_singletask_name

    try:
        parse_singletask_name(name)
    except ValueError as e:
        raise ValueError(f"unknown environment {name!r}: {e}") from None
    import ogbench

    return ogbench.make_env_and_datasets(name, env_only=True)
