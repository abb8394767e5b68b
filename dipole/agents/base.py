"""What every agent shares: the config base class with typed overrides, acting, the one gradient step, saving.

An agent is an immutable pytree (`flax.struct.PyTreeNode`): its arrays (params, optimiser state, rng, counters)
are leaves, its config, network definitions and optimiser are static. `update(batch)` returns a new agent and a
dict of metrics; every agent takes its gradient step through `Agent.apply_loss`.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import partial
from typing import Any, ClassVar, get_type_hints

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dipole.errors import UsageError
from dipole.nn import critic


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters common to all agents. Subclasses add their own fields, each with its default."""

    agent: ClassVar[str] = "base"
    # Fields that only change how actions are sampled, so they may differ from training in `dipole eval`.
    INFERENCE_FIELDS: ClassVar[tuple] = ("flow_steps", "omega", "num_candidates", "selection")
    # Fields that fix the networks' shapes: a checkpoint can only be loaded with the values it was trained with.
    SHAPE_FIELDS: ClassVar[tuple] = ("actor_hidden_dims", "value_hidden_dims", "num_qs", "shared_actor")

    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per gradient step."""
    actor_hidden_dims: tuple[int, ...] = (512, 512, 512, 512)
    """Hidden layer widths of the policy networks."""
    value_hidden_dims: tuple[int, ...] = (512, 512, 512, 512)
    """Hidden layer widths of the Q and V networks."""
    discount: float = 0.99
    """Discount factor gamma."""
    flow_steps: int = 10
    """Euler steps of the flow sampler (noise at t=0 to action at t=1)."""

    def replace(self, **kwargs) -> "AgentConfig":
        names = self.field_names()
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise UsageError(f"unknown config field(s) {unknown} for agent '{self.agent}'; valid fields: {sorted(names)}")
        return dataclasses.replace(self, **{k: coerce_field(type(self), k, v) for k, v in kwargs.items()})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def form_defaults(cls, config: "AgentConfig") -> dict:
        """Defaults that depend on a field's value (DIPOLE's critic form); `build_config` applies them."""
        return {}

    @classmethod
    def saved_fields(cls, d: dict) -> dict:
        """A config dict as a checkpoint saved it, completed with what older versions left implicit (DIPOLE's
        critic form); `from_dict` and the resume check read saved configs through it."""
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AgentConfig":
        # checkpoints written before the agent name became a class constant stored it among the fields
        return cls().replace(**{k: v for k, v in cls.saved_fields(d).items() if k != "agent"})


def coerce_field(cls, name: str, value: Any):
    """Turn a command-line string (or JSON value) into the declared type of config field `name`."""
    hint = get_type_hints(cls)[name]
    try:
        if hint is tuple or typing.get_origin(hint) is tuple:
            if isinstance(value, str):
                value = [v.strip() for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
            item = (typing.get_args(hint) or (int,))[0]
            if item is int:
                return tuple(_as_int(v) for v in value)
            return tuple(item(v) for v in value)
        if hint is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise UsageError(value)
                return low in ("true", "1", "yes")
            return bool(value)
        if hint is int:
            return _as_int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"config.{name}: cannot read {value!r} as {getattr(hint, '__name__', hint)}") from None
    return value


def _as_int(value):
    """An integer from an int, an integral float or a string such as '3' or '3.0'; '2.5' is refused, not rounded."""
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, float) and not number.is_integer():
        raise ValueError(value)
    return int(number)


def parse_overrides(items: list[str]) -> dict:
    """['beta=3', 'actor_hidden_dims=64,64'] -> {'beta': '3', ...}; values are coerced by AgentConfig.replace."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"override {item!r} must look like KEY=VALUE (e.g. beta=3)")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def make_optimizer(lr: float):
    return optax.adam(lr)


def as_batch2d(x):
    return jnp.atleast_2d(jnp.asarray(x, jnp.float32))


def static(**kw):
    """A field that is part of the agent's structure, not an array: config, network definitions, optimiser, sizes."""
    return flax.struct.field(pytree_node=False, **kw)


@partial(jax.jit, static_argnums=0)
def _q_apply(q_net, q_params, obs, actions):
    return q_net.apply(q_params, obs, actions)


class Sampling(flax.struct.PyTreeNode):
    """How an agent acts, resolved and checked once by `Agent.sampling` and frozen: `agent.act(obs, key, sampling)`
    takes it, under `jax.jit` and `jax.vmap` over a population's members alike.

    `guidance` is omega as a float32 scalar (0 for agents without a greediness knob), or, for an agent with a weight
    per reward term (dipole-terms), the weight vector; `temperature` is a Gaussian policy's (0 acts with the mean).
    `num_candidates` and `selection` shape the program and are static. `row` is what an evaluation records of it.
    """

    guidance: jax.Array
    temperature: jax.Array
    num_candidates: int = flax.struct.field(pytree_node=False, default=1)
    selection: str = flax.struct.field(pytree_node=False, default="argmax")
    row: tuple = flax.struct.field(pytree_node=False, default=())  # ((field, value), ...) of an evaluation row

    def fields(self) -> dict:
        """omega (None for agents without one), num_candidates, selection (None at K = 1) and, for agents with a
        weight per reward term, term_weights: the columns an evaluation row carries."""
        return {k: dict(v) if k == "term_weights" else v for k, v in self.row}


class Agent(flax.struct.PyTreeNode):
    """Base of every agent: acting with argument checks, the shared gradient step, and `save`.

    Subclasses hold `params`, `opt_state`, `rng`, `step` (and `target_q` when they keep a target critic) as arrays,
    and `config`, `tx`, `obs_dim`, `action_dim` and their networks (by name) as static fields. They implement
    `create`, `update` and `_sample(obs (B, D), rng, omega, num_candidates)`.
    """

    # What the agent samples with, the one declaration every caller reads (never its config's fields): a subset of
    # "omega" (a greediness knob), "num_candidates" (a critic ranks K > 1 candidates), "selection" (how one of K is
    # kept: argmax, or tilt for agents with an advantage temperature), "temperature" (a Gaussian policy's) and
    # "term_weights" (a weight per reward term instead of omega).
    SAMPLING: ClassVar[frozenset] = frozenset()

    @classmethod
    def samples_with(cls, setting: str) -> bool:
        return setting in cls.SAMPLING

    # ------------------------------------------------------------------ learning
    def apply_loss(self, loss_fn, *args, **changes):
        """The gradient step every agent takes: d loss_fn(params, *args) / d params -> optimiser -> apply; then the
        target critic (when the agent keeps one) moves towards the new Q by Polyak averaging with rate config.tau.

        `changes` are further fields of the new agent (e.g. its next rng). Returns (new agent, loss_fn's metrics).
        """
        grads, info = jax.grad(loss_fn, has_aux=True)(self.params, *args)
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        new = {"params": params, "opt_state": opt_state, "step": self.step + 1, **changes}
        if hasattr(self, "target_q"):
            new["target_q"] = critic.polyak(self.target_q, params["q"], self.config.tau)
        return self.replace(**new), info

    @classmethod
    def check_dataset(cls, config, dataset) -> None:
        """Refuse, before training starts, a dataset this agent cannot learn from (every agent here can use
        (s, a, r, mask, s') data; agents needing more fields say so)."""

    # ------------------------------------------------------------------ acting
    def sampling(self, omega: float | None = None, num_candidates: int | None = None, selection: str | None = None,
                 temperature: float | None = None, term_weights=None) -> Sampling:
        """The one resolver of sampling settings: the given ones (None: the config's) checked against what this agent
        samples with (`SAMPLING`) -> a frozen `Sampling` for `act`. Refused with one message each: a knob the agent
        lacks, omega < 0, K < 1, an unknown selection rule or tilt without an advantage temperature, a negative
        temperature, bad term weights."""
        cfg = self.config
        if omega is not None and "omega" not in self.SAMPLING:
            if "term_weights" in self.SAMPLING:
                raise UsageError(f"agent '{cfg.agent}' has a weight per reward term instead of one omega; pass "
                                 f"term_weights, e.g. {{'{cfg.terms[0]}': 2.0}} (terms: {list(cfg.terms)})")
            raise UsageError(f"agent '{cfg.agent}' has no greediness knob; omega applies to dipole and cfgrl")
        if temperature is not None and "temperature" not in self.SAMPLING:
            raise UsageError(f"agent '{cfg.agent}' samples from a flow and has no temperature; temperature applies "
                             "to iql")
        if temperature is not None and not temperature >= 0:
            raise UsageError(f"temperature must be >= 0 (0 acts with the mean), got {temperature}")
        if term_weights is not None and "term_weights" not in self.SAMPLING:
            raise UsageError(f"agent '{cfg.agent}' has no reward terms; term weights apply to dipole-terms")
        has_omega = "omega" in self.SAMPLING
        omega = (float(cfg.omega) if has_omega else 0.0) if omega is None else float(omega)
        k = (int(cfg.num_candidates) if "num_candidates" in self.SAMPLING else 1) if num_candidates is None \
            else int(num_candidates)
        if not omega >= 0:
            raise UsageError(f"omega must be >= 0 (0 samples pi+, larger is greedier), got {omega}")
        if k < 1:
            raise UsageError(f"num_candidates must be >= 1 (1 turns rejection sampling off), got {k}")
        if k > 1 and "num_candidates" not in self.SAMPLING:
            raise UsageError(f"agent '{cfg.agent}' does not rank candidate actions by a critic; use num_candidates=1")
        sel = self.selection_of(selection)
        row = [("omega", omega if has_omega else None), ("num_candidates", k), ("selection", sel if k > 1 else None)]
        if "term_weights" in self.SAMPLING:
            guidance = jnp.asarray(self.weight_vector(term_weights))
            row.append(("term_weights", tuple(zip(cfg.terms, map(float, np.asarray(guidance))))))
        else:
            guidance = jnp.float32(omega)
        return Sampling(guidance, jnp.float32(temperature or 0.0), k, sel, tuple(row))

    def check_sampling(self, omega: float | None = None, num_candidates: int | None = None,
                       temperature: float | None = None, selection: str | None = None) -> tuple[float, int]:
        """Refuse sampling arguments (or config values, for those left None) this agent cannot use -> (omega, K)."""
        s = self.sampling(omega, num_candidates, selection, temperature)
        return (float(s.guidance) if "term_weights" not in self.SAMPLING else 0.0), s.num_candidates

    def selection_of(self, selection: str | None = None) -> str:
        """The candidate selection rule to use: `selection`, or the config's (agents without one use 'argmax')."""
        from dipole.nn.flow import SELECTIONS

        sel = (self.config.selection if "selection" in self.SAMPLING else "argmax") if selection is None \
            else selection
        if sel not in SELECTIONS:
            raise UsageError(f"selection must be one of {', '.join(SELECTIONS)}, got {sel!r}")
        if sel == "tilt" and "selection" not in self.SAMPLING:
            raise UsageError(f"agent '{self.config.agent}' has no advantage temperature to tilt candidates by; "
                             "selection='tilt' applies to dipole (use 'argmax')")
        return sel

    def act(self, obs, key, sampling: Sampling):
        """Actions in [-1, 1] for observations (B, D) under a resolved `sampling`; pure, so it may be jitted and
        vmapped over a population's stacked members (`jax.vmap(lambda ag, o, k: ag.act(o, k, s))`)."""
        extra = {}
        if "temperature" in self.SAMPLING:
            extra["temperature"] = sampling.temperature
        if "selection" in self.SAMPLING:
            extra["selection"] = sampling.selection
        return self._sample(obs, key, sampling.guidance, sampling.num_candidates, **extra)

    def sample_actions(self, obs, rng, omega: float | None = None, num_candidates: int | None = None,
                       temperature: float | None = None, selection: str | None = None, term_weights=None):
        """Actions in [-1, 1] for observations (D,) or (B, D); omega, K and selection default to the config's values.

        `temperature` (Gaussian policies only, e.g. IQL): 0 acts with the mean (evaluation, the default), 1 samples
        the policy as trained (acting online). `selection` ('argmax' or 'tilt', dipole only) is how one of K > 1
        candidates is kept: see `dipole.nn.flow.select_candidates`. `term_weights` (dipole-terms only) names some
        reward terms' weights (e.g. {'safety': 4.0} or 'speed=1,safety=4'); the others keep the config's."""
        s = self.sampling(omega, num_candidates, selection, temperature, term_weights)
        obs = jnp.asarray(obs, jnp.float32)
        single = obs.ndim == 1
        actions = self.act(jnp.atleast_2d(obs), rng, s)
        return actions[0] if single else actions

    def critic_values(self, obs, actions):
        """Every Q head's value at (obs (B, D), actions (B, A)) -> (num_qs, B) (the online heads, which rank
        candidates; (num_qs, B, T) for an agent with T reward terms). Single (D,), (A,) inputs give (num_qs,)."""
        if not hasattr(self, "q_net"):
            raise UsageError(f"agent '{self.config.agent}' has no Q ensemble to read")
        obs, actions = jnp.asarray(obs, jnp.float32), jnp.asarray(actions, jnp.float32)
        single = obs.ndim == 1
        obs, actions = jnp.atleast_2d(obs), jnp.atleast_2d(actions)
        if obs.ndim != 2 or actions.ndim != 2 or obs.shape[0] != actions.shape[0] or obs.shape[1] != self.obs_dim \
                or actions.shape[1] != self.action_dim:
            raise UsageError(f"critic_values takes obs (B, {self.obs_dim}) and actions (B, {self.action_dim}); got "
                             f"{tuple(obs.shape)} and {tuple(actions.shape)}")
        qs = _q_apply(self.q_net, self.params["q"], obs, actions)
        return qs[:, 0] if single else qs

    # ------------------------------------------------------------------ saving
    def header(self, **extra) -> dict:
        """What a checkpoint needs to rebuild this agent, plus `extra` (run facts such as env, seed, dataset)."""
        from dipole.version import __version__

        return {"agent": self.config.agent, "config": self.config.to_dict(), "obs_dim": int(self.obs_dim),
                "action_dim": int(self.action_dim), "step": int(self.step), "dipole_version": __version__, **extra}

    def save(self, path: str, extra_arrays: dict | None = None, **header) -> str:
        """Write this agent to `path` atomically (a checksummed, self-describing file); `dipole.load(path)` reads it.

        Keyword arguments are stored in the header beside the agent's own description.
        """
        from dipole.storage import write_checkpoint

        state = jax.device_get(flax.serialization.to_state_dict(self))
        return write_checkpoint(path, self.header(**header), state, extra_arrays)
