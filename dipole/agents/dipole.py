"""DIPOLE: Dichotomous Diffusion Policy Optimization (Liang et al., ICLR 2026), flow-matching form.

Two flow policies share the data: v+ is fitted with weights w = sigmoid(beta * G), v- with 1 - w, where
G = min_i Q_i(s, a) - V(s) comes from an IQL critic. At sampling time
    v = v- + (1 + omega) (v+ - v-)
samples pi_omega ∝ mu * sigmoid(beta G) * exp(omega * beta * G): omega (greediness) is an inference knob.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import flax
import jax
import jax.numpy as jnp

from dipole import critic, flow
from dipole.agents.base import ActingMixin, AgentConfig, apply_updates, as_batch2d, iql_critic_init, make_optimizer
from dipole.networks import PolarVelocityFields

ADV_NORMS = ("none", "running_std")


@dataclasses.dataclass(frozen=True)
class DIPOLEConfig(AgentConfig):
    agent: str = "dipole"
    # critic (IQL)
    num_qs: int = 2
    expectile: float = 0.9
    tau: float = 0.005  # Polyak rate of the target Q
    # policies
    beta: float = 10.0  # temperature inside sigmoid(beta * G)
    adv_norm: str = "none"  # 'none' (the paper's form) or 'running_std' (G / running std of G)
    adv_norm_decay: float = 0.995  # EMA decay of the running variance of G
    shared_actor: bool = False  # one network with a polarity embedding instead of two networks
    # sampling (defaults used by evaluation; both can be changed per call without retraining)
    omega: float = 1.0  # greediness, fixed in advance per task
    num_candidates: int = 32  # rejection sampling over K guided candidates by min Q; 1 turns it off


class DIPOLEAgent(ActingMixin, flax.struct.PyTreeNode):
    ranks_candidates = True

    params: Any  # {'actor': ..., 'q': ..., 'v': ...}
    target_q: Any
    opt_state: Any
    rng: jax.Array
    adv_mean_ema: jax.Array
    adv_var_ema: jax.Array
    step: jax.Array
    config: DIPOLEConfig = flax.struct.field(pytree_node=False)
    nets: Any = flax.struct.field(pytree_node=False)  # (actor, q, v) module definitions
    tx: Any = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: DIPOLEConfig | None = None):
        config = config or DIPOLEConfig()
        if config.adv_norm not in ADV_NORMS:
            raise ValueError(f"config.adv_norm must be one of {ADV_NORMS}, got {config.adv_norm!r}")
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        action_dim = int(ex_actions.shape[-1])
        actor = PolarVelocityFields(config.actor_hidden_dims, action_dim, shared=config.shared_actor)
        rng = jax.random.PRNGKey(seed)
        rng, a_key, q_key, v_key = jax.random.split(rng, 4)
        q, v, q_params, v_params = iql_critic_init(config, ex_obs, ex_actions, q_key, v_key)
        params = {
            "actor": actor.init(a_key, ex_obs, ex_actions, jnp.zeros(ex_actions.shape[:-1])),
            "q": q_params,
            "v": v_params,
        }
        tx = make_optimizer(config.lr)
        return cls(
            params=params,
            target_q=params["q"],
            opt_state=tx.init(params),
            rng=rng,
            adv_mean_ema=jnp.zeros(()),
            adv_var_ema=jnp.zeros(()),
            step=jnp.zeros((), jnp.int32),
            config=config,
            nets=(actor, q, v),
            tx=tx,
            action_dim=action_dim,
        )

    # ------------------------------------------------------------------ pieces
    def velocities(self, params, obs, x, t):
        """(v+, v-) each (B, A), from one batched call."""
        both = self.nets[0].apply(params["actor"], obs, x, t)
        return both[0], both[1]

    def q_values(self, params, obs, actions):
        return self.nets[1].apply(params, obs, actions)

    def normalised_advantage(self, adv, mean_ema, var_ema, count):
        """G, or G divided by its running std (bias-corrected EMA), depending on config.adv_norm."""
        if self.config.adv_norm == "none":
            return adv
        debias = 1.0 - self.config.adv_norm_decay ** count.astype(jnp.float32)
        std = jnp.sqrt(var_ema / debias + 1e-8)
        return adv / std

    def positive_weight(self, adv):
        """w = sigmoid(beta * G) in (0, 1); the negative policy's weight is 1 - w."""
        return jax.nn.sigmoid(self.config.beta * adv)

    # ------------------------------------------------------------------ losses
    def critic_loss(self, params, batch):
        return critic.iql_losses(self.nets[1].apply, self.nets[2].apply, params, self.target_q, batch,
                                 self.config.discount, self.config.expectile)

    def actor_loss(self, params, batch, rng, adv):
        x_t, t, target = flow.flow_matching_inputs(rng, batch["actions"])
        v_pos, v_neg = self.velocities(params, batch["observations"], x_t, t)
        w = self.positive_weight(adv)
        err_pos = flow.per_sample_flow_error(v_pos, target)
        err_neg = flow.per_sample_flow_error(v_neg, target)
        loss_pos = jnp.mean(w * err_pos)
        loss_neg = jnp.mean((1.0 - w) * err_neg)
        info = {"actor_pos_loss": loss_pos, "actor_neg_loss": loss_neg, "w_mean": w.mean(), "w_std": w.std()}
        return loss_pos + loss_neg, info

    def total_loss(self, params, batch, rng, adv):
        c_loss, c_info = self.critic_loss(params, batch)
        a_loss, a_info = self.actor_loss(params, batch, rng, adv)
        return c_loss + a_loss, {**c_info, **a_info}

    # ------------------------------------------------------------------ update
    @jax.jit
    def update(self, batch):
        """One gradient step on critic and both policies; returns (new agent, metrics).

        batch: observations, actions, rewards, masks, next_observations, and optionally `advantages` (B,)
        to weight the policies by a known advantage instead of the critic's G = min_i Q_i - V.
        """
        cfg = self.config
        rng, loss_rng = jax.random.split(self.rng)
        qs = self.q_values(self.params["q"], batch["observations"], batch["actions"])
        v = self.nets[2].apply(self.params["v"], batch["observations"])
        # A batch may carry known advantages (bandits, analytic checks): then the critic's G is not used.
        raw_adv = batch["advantages"] if "advantages" in batch else critic.advantage(qs, v)
        count = self.step + 1
        d = cfg.adv_norm_decay
        mean_ema = d * self.adv_mean_ema + (1 - d) * raw_adv.mean()
        var_ema = d * self.adv_var_ema + (1 - d) * raw_adv.var()
        adv = self.normalised_advantage(raw_adv, mean_ema, var_ema, count)

        grads, info = jax.grad(self.total_loss, has_aux=True)(self.params, batch, loss_rng, adv)
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = apply_updates(self.params, updates)
        target_q = critic.polyak(self.target_q, params["q"], cfg.tau)
        info.update(adv_mean=raw_adv.mean(), adv_std=raw_adv.std(), adv_used_std=adv.std())
        new = self.replace(
            params=params, target_q=target_q, opt_state=opt_state, rng=rng,
            adv_mean_ema=mean_ema, adv_var_ema=var_ema, step=count,
        )
        return new, info

    # ------------------------------------------------------------------ acting
    def guided_velocity_fn(self, omega):
        def fn(obs, x, t):
            v_pos, v_neg = self.velocities(self.params, obs, x, t)
            return flow.guided_velocity(v_pos, v_neg, omega)

        return fn

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        sample_fn = lambda o, noise: flow.euler_sample(self.guided_velocity_fn(omega), o, noise, self.config.flow_steps)
        score_fn = lambda o, a: jnp.min(self.q_values(self.params["q"], o, a), axis=0)
        return flow.best_of_candidates(sample_fn, score_fn, rng, obs, num_candidates, self.action_dim)


def get_config() -> DIPOLEConfig:
    return DIPOLEConfig()
