"""What every agent shares: the config base class with typed overrides, the registry, the optimiser."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_type_hints

import optax


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters common to all agents. Subclasses add their own fields, each with its default."""

    agent: str = "base"
    lr: float = 3e-4
    batch_size: int = 256
    actor_hidden_dims: tuple = (512, 512, 512, 512)
    value_hidden_dims: tuple = (512, 512, 512, 512)
    discount: float = 0.99
    flow_steps: int = 10

    def replace(self, **kwargs) -> "AgentConfig":
        unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(
                f"unknown config key(s) {unknown} for agent '{self.agent}'; valid keys: "
                f"{sorted(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **{k: coerce_field(type(self), k, v) for k, v in kwargs.items()})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "AgentConfig":
        return cls().replace(**{k: v for k, v in d.items()})


def coerce_field(cls, name: str, value: Any):
    """Turn a command-line string (or JSON value) into the declared type of config field `name`."""
    hint = get_type_hints(cls)[name]
    try:
        if hint is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
            return tuple(int(v) for v in value)
        if hint is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return low in ("true", "1", "yes")
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) else int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"config.{name}: cannot read {value!r} as {getattr(hint, '__name__', hint)}") from None
    return value


def parse_overrides(items: list[str]) -> dict:
    """['beta=3', 'actor_hidden_dims=64,64'] -> {'beta': '3', ...}; values are coerced by AgentConfig.replace."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like --config.KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def make_optimizer(lr: float):
    return optax.adam(lr)


def config_json(config: AgentConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


class ActingMixin:
    """`sample_actions` for every agent: defaults from the config, argument checks, (D,) or (B, D) observations.

    Agents implement `_sample(obs (B, D), rng, omega, num_candidates)`; `ranks_candidates` says whether they have a
    critic to rank K > 1 candidates by.
    """

    ranks_candidates = False

    def sample_actions(self, obs, rng, omega: float | None = None, num_candidates: int | None = None):
        import jax.numpy as jnp

        cfg = self.config
        if omega is not None and not hasattr(cfg, "omega"):
            raise ValueError(f"agent '{cfg.agent}' has no greediness knob; omega applies to dipole and cfgrl")
        omega = getattr(cfg, "omega", 0.0) if omega is None else float(omega)
        k = getattr(cfg, "num_candidates", 1) if num_candidates is None else int(num_candidates)
        if omega < 0:
            raise ValueError(f"omega must be >= 0 (0 samples pi+, larger is greedier), got {omega}")
        if k < 1:
            raise ValueError(f"num_candidates must be >= 1 (1 turns rejection sampling off), got {k}")
        if k > 1 and not self.ranks_candidates:
            raise ValueError(f"agent '{cfg.agent}' has no critic to rank candidates; use num_candidates=1")
        obs = jnp.asarray(obs, jnp.float32)
        single = obs.ndim == 1
        actions = self._sample(jnp.atleast_2d(obs), rng, jnp.float32(omega), k)
        return actions[0] if single else actions


def iql_critic_init(config, ex_obs, ex_actions, q_key, v_key):
    """Q ensemble and V networks with their parameters, as every IQL-critic agent builds them."""
    from dipole.networks import QEnsemble, ValueNet

    q = QEnsemble(config.value_hidden_dims, num_qs=config.num_qs)
    v = ValueNet(config.value_hidden_dims)
    return q, v, q.init(q_key, ex_obs, ex_actions), v.init(v_key, ex_obs)


def as_batch2d(x):
    import jax.numpy as jnp

    return jnp.atleast_2d(jnp.asarray(x, jnp.float32))


def apply_updates(params, updates):
    import jax

    return jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
