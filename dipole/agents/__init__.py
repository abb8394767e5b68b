"""Agent registry: name -> (agent class, config class). One file per agent; shared pieces live in
dipole.networks, dipole.flow and dipole.critic."""

from dipole.agents.bc import BCAgent, BCConfig
from dipole.agents.cfgrl import CFGRLAgent, CFGRLConfig
from dipole.agents.dipole import DIPOLEAgent, DIPOLEConfig
from dipole.agents.fql import FQLAgent, FQLConfig
from dipole.agents.ifql import IFQLAgent, IFQLConfig
from dipole.agents.iql import IQLAgent, IQLConfig

AGENTS = {
    "dipole": (DIPOLEAgent, DIPOLEConfig),
    "bc": (BCAgent, BCConfig),
    "iql": (IQLAgent, IQLConfig),
    "ifql": (IFQLAgent, IFQLConfig),
    "fql": (FQLAgent, FQLConfig),
    "cfgrl": (CFGRLAgent, CFGRLConfig),
}


def get_agent(name: str):
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; available: {sorted(AGENTS)}")
    return AGENTS[name]


def make_config(name: str, overrides: dict | None = None):
    _, config_cls = get_agent(name)
    return config_cls().replace(**(overrides or {}))
