"""FQL (Park et al. 2025): a BC flow policy, and a one-step policy distilled from it while maximising Q.

Critic: Q ensemble trained by TD with next actions from the one-step policy, target aggregated by the mean over
heads (FQL's OGBench default), Polyak target. Actor: bc_flow_loss + alpha * ||mu(s, z) - flow(s, z)||^2 - Q(s, mu(s, z)).
alpha is per task (FQL's paper: 300 for cube/scene, 1000 for puzzle, 10-30 for locomotion; see dipole/agents/presets.py).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dipole.agents.base import Agent, AgentConfig, as_batch2d, make_optimizer, static
from dipole.errors import UsageError
from dipole.nn import flow
from dipole.nn.networks import MLP, QEnsemble, VelocityField
from dipole.seeding import stream_key


@dataclasses.dataclass(frozen=True)
class FQLConfig(AgentConfig):
    agent: ClassVar[str] = "fql"
    num_qs: int = 2
    """Q heads in the ensemble."""
    tau: float = 0.005
    """Polyak rate of the target Q."""
    alpha: float = 10.0
    """Distillation coefficient (per task category, as in FQL's paper)."""
    q_agg: str = "mean"
    """'mean' or 'min' over Q heads in the TD target and the actor's Q term."""
    normalize_q_loss: bool = False
    """Divide the actor's Q term by the mean |Q| of the batch."""


class OneStepPolicy(nn.Module):
    """mu(s, z): one network call from noise z to an action."""

    hidden_dims: tuple
    action_dim: int

    @nn.compact
    def __call__(self, obs, noise):
        return MLP(self.hidden_dims, self.action_dim)(jnp.concatenate([obs, noise], axis=-1))


class FQLAgent(Agent):
    params: Any  # {'flow', 'onestep', 'q'}
    target_q: Any
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: FQLConfig = static()
    flow_net: Any = static()  # VelocityField (behaviour cloning flow, the teacher)
    onestep_net: Any = static()  # OneStepPolicy (the student that acts)
    q_net: Any = static()
    tx: Any = static()
    obs_dim: int = static()
    action_dim: int = static()

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: FQLConfig | None = None):
        config = config or FQLConfig()
        if config.q_agg not in ("mean", "min"):
            raise UsageError(f"config.q_agg must be 'mean' or 'min', got {config.q_agg!r}")
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        a_dim = int(ex_actions.shape[-1])
        field = VelocityField(config.actor_hidden_dims, a_dim)
        onestep = OneStepPolicy(config.actor_hidden_dims, a_dim)
        q = QEnsemble(config.value_hidden_dims, num_qs=config.num_qs)
        rng, f_key, o_key, q_key = jax.random.split(stream_key(seed, "init"), 4)
        params = {"flow": field.init(f_key, ex_obs, ex_actions, jnp.zeros(ex_actions.shape[:-1])),
                  "onestep": onestep.init(o_key, ex_obs, ex_actions), "q": q.init(q_key, ex_obs, ex_actions)}
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=params["q"], opt_state=tx.init(params), rng=rng,
                   step=jnp.zeros((), jnp.int32), config=config, flow_net=field, onestep_net=onestep, q_net=q, tx=tx,
                   obs_dim=int(ex_obs.shape[-1]), action_dim=a_dim)

    def aggregate(self, qs):
        return qs.mean(axis=0) if self.config.q_agg == "mean" else qs.min(axis=0)

    def onestep_actions(self, params, obs, noise):
        return jnp.clip(self.onestep_net.apply(params["onestep"], obs, noise), -1.0, 1.0)

    def flow_actions(self, params, obs, noise):
        velocity = lambda o, x, t: self.flow_net.apply(params["flow"], o, x, t)
        return flow.euler_sample(velocity, obs, noise, self.config.flow_steps)

    def critic_loss(self, params, batch, rng):
        noise = jax.random.normal(rng, batch["actions"].shape)
        next_actions = self.onestep_actions(self.params, batch["next_observations"], noise)
        next_q = self.aggregate(self.q_net.apply(self.target_q, batch["next_observations"], next_actions))
        target = jax.lax.stop_gradient(batch["rewards"] + self.config.discount * batch["masks"] * next_q)
        qs = self.q_net.apply(params["q"], batch["observations"], batch["actions"])
        loss = jnp.mean(jnp.square(qs - target[None]))
        return loss, {"q_loss": loss, "q_mean": qs.mean()}

    def actor_loss(self, params, batch, rng):
        flow_key, noise_key = jax.random.split(rng)
        x_t, t, target = flow.flow_matching_inputs(flow_key, batch["actions"])
        pred = self.flow_net.apply(params["flow"], batch["observations"], x_t, t)
        bc_loss = jnp.mean(flow.per_sample_flow_error(pred, target))
        noise = jax.random.normal(noise_key, batch["actions"].shape)
        teacher = jax.lax.stop_gradient(self.flow_actions(params, batch["observations"], noise))
        student = self.onestep_net.apply(params["onestep"], batch["observations"], noise)
        distill = jnp.mean(jnp.square(student - teacher))
        q = self.aggregate(self.q_net.apply(params["q"], batch["observations"], jnp.clip(student, -1.0, 1.0)))
        q_term = -q.mean()
        if self.config.normalize_q_loss:
            q_term = q_term / jax.lax.stop_gradient(jnp.abs(q).mean() + 1e-6)
        loss = bc_loss + self.config.alpha * distill + q_term
        return loss, {"bc_loss": bc_loss, "distill_loss": distill, "actor_q": q.mean()}

    def total_loss(self, params, batch, rng):
        c_key, a_key = jax.random.split(rng)
        # the critic must not move the actor and vice versa: stop the Q params inside the actor's Q term
        c_loss, c_info = self.critic_loss(params, batch, c_key)
        actor_params = {**params, "q": jax.lax.stop_gradient(params["q"])}
        a_loss, a_info = self.actor_loss(actor_params, batch, a_key)
        return c_loss + a_loss, {**c_info, **a_info}

    @jax.jit
    def update(self, batch):
        rng, key = jax.random.split(self.rng)
        return self.apply_loss(self.total_loss, batch, key, rng=rng)

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        return self.onestep_actions(self.params, obs, jax.random.normal(rng, (obs.shape[0], self.action_dim)))


def get_config() -> FQLConfig:
    return FQLConfig()
