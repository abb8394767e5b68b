"""Agents: one file each, with its config at the top. This module is the registry and the user-facing constructors.

    agent = make("dipole", ex_obs, ex_actions, seed=0, preset="small", beta=3.0)
    agent, info = agent.update(batch)
    actions = agent.sample_actions(obs, rng, omega=1.0, num_candidates=32)
    agent.save("agent.dpl"); agent = load("agent.dpl")
"""

from __future__ import annotations

from functools import partial

import jax
import numpy as np

from dipole.agents.base import Agent, AgentConfig
from dipole.agents.bc import BCAgent, BCConfig
from dipole.agents.cfgrl import CFGRLAgent, CFGRLConfig
from dipole.agents.dipole import DIPOLEAgent, DIPOLEConfig
from dipole.agents.fql import FQLAgent, FQLConfig
from dipole.agents.ifql import IFQLAgent, IFQLConfig
from dipole.agents.iql import IQLAgent, IQLConfig
from dipole.agents.presets import SIZE_PRESETS, task_overrides
from dipole.agents.terms import TermsAgent, TermsConfig
from dipole.errors import UsageError
from dipole.storage import CheckpointError, read_checkpoint, resolve_checkpoint

AGENTS = {
    "dipole": (DIPOLEAgent, DIPOLEConfig),
    "bc": (BCAgent, BCConfig),
    "iql": (IQLAgent, IQLConfig),
    "ifql": (IFQLAgent, IFQLConfig),
    "fql": (FQLAgent, FQLConfig),
    "cfgrl": (CFGRLAgent, CFGRLConfig),
    "dipole-terms": (TermsAgent, TermsConfig),
}


def get_agent(name: str):
    """-> (agent class, config class)."""
    if name not in AGENTS:
        raise UsageError(f"unknown agent {name!r}; available: {sorted(AGENTS)}")
    return AGENTS[name]


def create_agent(agent_cls, seed: int, ex_obs, ex_actions, config) -> Agent:
    """`agent_cls.create(seed, ex_obs, ex_actions, config)` compiled as one program: the same values bit for bit
    (tests/test_api.py), in one compilation per (agent, config, shapes) instead of one per array operation of the
    networks' initialisation (several seconds at the start of every process)."""
    if not -2 ** 31 <= int(seed) < 2 ** 31:  # a key of a wider seed is made on the host, as create makes it
        return agent_cls.create(seed, ex_obs, ex_actions, config)
    return _compiled_create(agent_cls, config, np.int32(seed), np.asarray(ex_obs), np.asarray(ex_actions))


@partial(jax.jit, static_argnums=(0, 1))
def _compiled_create(agent_cls, config, seed, ex_obs, ex_actions):
    return agent_cls.create(seed, ex_obs, ex_actions, config)


def make_config(name: str, overrides: dict | None = None):
    """The agent's config with `overrides`, and the defaults of the form they select (DIPOLE's critic='iql')."""
    return build_config(name, None, "paper", overrides)  # no task rules; `paper` is the configs' own sizes


def build_config(agent: str, env_name: str | None, preset: str = "paper", overrides: dict | None = None):
    """Agent defaults <- its form's defaults (DIPOLE's critic='iql') <- size preset <- task rules for `env_name`
    (None: none) <- explicit overrides. A rule keyed 'AGENT[FIELD=VALUE].KEY' applies only where the overrides (or
    the defaults) give FIELD that value."""
    if preset not in SIZE_PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {sorted(SIZE_PRESETS)}")
    _, config_cls = get_agent(agent)
    overrides = overrides or {}
    chosen = config_cls().replace(**overrides)  # what the user chose: it selects the form and conditional rules
    fields = set(chosen.to_dict())
    rules = {}
    for key, value in (task_overrides(env_name) if env_name else {}).items():
        owner, condition, name = parse_rule_key(key)
        if owner in ("", agent) and (condition is None or _holds(chosen, condition)):
            rules[name] = value
    merged = {**config_cls.form_defaults(chosen), **SIZE_PRESETS[preset],
              **{k: v for k, v in rules.items() if k in fields}}
    return config_cls().replace(**merged).replace(**overrides)


def agent_spec(spec: str) -> tuple[str, dict]:
    """'AGENT' or 'AGENT[FIELD=VALUE,...]' (e.g. 'dipole[critic=iql]', as benchmark scripts take agents) ->
    (agent name, overrides), checked."""
    name, _, rest = spec.strip().partition("[")
    overrides = {}
    if rest:
        if not rest.endswith("]"):
            raise UsageError(f"agent {spec!r}: write AGENT or AGENT[FIELD=VALUE,...], e.g. dipole[critic=iql]")
        for item in filter(None, (x.strip() for x in rest[:-1].split(","))):
            field, eq, value = item.partition("=")
            if not eq:
                raise UsageError(f"agent {spec!r}: {item!r} must look like FIELD=VALUE")
            overrides[field.strip()] = value.strip()
    get_agent(name)
    make_config(name, overrides)  # unknown fields and bad values are refused here
    return name, overrides


def _holds(config, condition: tuple[str, str]) -> bool:
    field, value = condition
    return getattr(config, field) == type(config)().replace(**{field: value}).to_dict()[field]


def parse_rule_key(key: str) -> tuple[str, tuple[str, str] | None, str]:
    """'FIELD', 'AGENT.FIELD' or 'AGENT[COND=VALUE].FIELD' -> (agent or '', (COND, VALUE) or None, FIELD), checked:
    a key that names no agent or field would otherwise be dropped silently."""
    owner, _, name = key.rpartition(".")
    condition = None
    if owner.endswith("]") and "[" in owner:
        owner, _, cond = owner[:-1].partition("[")
        field, eq, value = cond.partition("=")
        if not eq or owner not in AGENTS or field not in AGENTS[owner][1].field_names():
            raise UsageError(f"task rule key {key!r}: write AGENT[FIELD=VALUE].KEY with a field of that agent "
                             "(dipole/agents/presets.py)")
        condition = (field, value)
    if owner:
        if owner not in AGENTS:
            raise UsageError(f"task rule key {key!r} names no agent; agents: {sorted(AGENTS)} (dipole/agents/presets.py)")
        if name not in AGENTS[owner][1].field_names():
            raise UsageError(f"task rule key {key!r}: agent '{owner}' has no config field {name!r}; fields: "
                             f"{sorted(AGENTS[owner][1].field_names())} (dipole/agents/presets.py)")
    elif not any(name in c.field_names() for _, c in AGENTS.values()):
        raise UsageError(f"task rule key {key!r} is a config field of no agent (dipole/agents/presets.py)")
    return owner, condition, name


def check_rule_key(key: str) -> None:
    parse_rule_key(key)


def make(agent: str, ex_obs, ex_actions, seed: int = 0, preset: str = "paper", task: str | None = None,
         **fields) -> Agent:
    """Build an agent from one example observation and action (shapes only).

    Config = the agent's defaults <- the size `preset` ('paper' 4x512, 'small' 3x128, 'tiny' 2x32) <- the settings
    fixed in advance for `task` (an environment name; None applies none) <- `fields`, any config field by name.
    """
    config = build_config(agent, task, preset, fields)
    agent_cls, _ = get_agent(agent)
    return create_agent(agent_cls, seed, ex_obs, ex_actions, config)


def restore(header: dict, state: dict, config: AgentConfig | None = None) -> Agent:
    """Rebuild the agent a checkpoint describes; `config` may replace the saved one if the network shapes agree."""
    from flax.serialization import from_state_dict

    if "members" in header:
        raise UsageError(f"this checkpoint holds a population of {len(header['members'])} {header['agent']} agents, "
                         "not one agent; use a member's own checkpoint (RUN/members/TASK-seedS.dpl, or agent.dpl in a "
                         "bench run folder) or dipole.runners.population.load_population")
    agent_cls, config_cls = get_agent(header["agent"])
    config = config or config_cls.from_dict(header["config"])
    template = create_agent(
        agent_cls, 0, np.zeros((1, header["obs_dim"]), np.float32), np.zeros((1, header["action_dim"]), np.float32), config
    )
    try:
        return from_state_dict(template, state["agent"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint does not match agent '{header['agent']}' with this config: {e}") from None


def load_checkpoint(path: str, config: AgentConfig | None = None) -> tuple[Agent, dict]:
    """A checkpoint file, or the newest valid one in a run folder -> (agent, header)."""
    path = resolve_checkpoint(path)
    header, state = read_checkpoint(path)
    return restore(header, state, config), header


def load(path: str) -> Agent:
    """The agent saved at `path` (a file written by `agent.save`, or a run folder: its newest valid checkpoint)."""
    return load_checkpoint(path)[0]


__all__ = ["AGENTS", "Agent", "AgentConfig", "SIZE_PRESETS", "get_agent", "make", "make_config", "load",
           "load_checkpoint", "restore", "build_config", "agent_spec"] + [c.__name__ for pair in AGENTS.values() for c in pair]
