"""Agent registry: name -> (agent class, config class)."""

from dipole.agents.dipole import DIPOLEAgent, DIPOLEConfig

AGENTS = {
    "dipole": (DIPOLEAgent, DIPOLEConfig),
}


def get_agent(name: str):
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; available: {sorted(AGENTS)}")
    return AGENTS[name]


def make_config(name: str, overrides: dict | None = None):
    _, config_cls = get_agent(name)
    return config_cls().replace(**(overrides or {}))
