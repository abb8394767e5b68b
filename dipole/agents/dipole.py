"""DIPOLE: Dichotomous Diffusion Policy Optimization (Liang et al., ICLR 2026), flow-matching form.

Two flow policies share the data: v+ is fitted with weights w = sigmoid(beta * G + k), v- with 1 - w, where
G = min_i Q_i(s, a) - V(s) is the critic's advantage. At sampling time
    v = v- + (1 + omega) (v+ - v-)
is a greediness knob at inference (the authors' code calls 1 + omega `cfg`; a monotone knob, which does not sample
mu * sigmoid(beta G) * exp(omega * beta * G) exactly, see docs/algorithm.md). Candidate selection with
selection='tilt' does converge to that target as K grows.

Two critics (config.critic):
- 'policy', the authors' form and the default: Q evaluates pi+. Its TD target is r + gamma * mask * Qtarget_j(s', a')
  with a' one sample of pi+ at s' (config.train_omega 0; the best of config.train_candidates by the online heads' min
  when > 1), every online head regressing to every target head; V is the expectile of the target heads' min at data
  actions and serves only to form G = min_j Qtarget_j(s, a) - V(s). Training is policy iteration.
- 'iql', this library's earlier form: an IQL critic (TD target r + gamma * mask * V(s'), G from the online heads),
  which never evaluates a policy. Its defaults are DIPOLEConfig.FORM_DEFAULTS['iql'] (applied by `build_config`).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from dipole.agents.base import Agent, AgentConfig, as_batch2d, make_optimizer, static
from dipole.errors import UsageError
from dipole.nn import critic, flow
from dipole.nn.networks import PolarVelocityFields
from dipole.seeding import stream_key


@dataclasses.dataclass(frozen=True)
class DIPOLEConfig(AgentConfig):
    agent: ClassVar[str] = "dipole"
    # Defaults of each critic form that differ from the fields' defaults (the authors' form). `build_config` (and so
    # `dipole.make`, the CLI and `dipole bench`) applies them when config.critic selects the form; the 'iql' form's
    # are this library's defaults before the policy form existed, so its runs repeat exactly.
    FORM_DEFAULTS: ClassVar[dict] = {"iql": {"beta": 10.0, "discount": 0.99, "omega": 1.0,
                                             "actor_hidden_dims": (512, 512, 512, 512),
                                             "value_hidden_dims": (512, 512, 512, 512)}}
    # the authors' sizes: 3x512 actors without LayerNorm, 3x512 critic and value with LayerNorm; gamma 0.995
    actor_hidden_dims: tuple[int, ...] = (512, 512, 512)
    """Hidden layer widths of the policy networks."""
    value_hidden_dims: tuple[int, ...] = (512, 512, 512)
    """Hidden layer widths of the Q and V networks."""
    discount: float = 0.995
    """Discount factor gamma."""
    # critic
    critic: str = "policy"
    """'policy' (the authors' form: Q evaluates pi+, its TD target uses a next action sampled from pi+; V forms G
    only) or 'iql' (earlier versions' form: TD target r + gamma V(s'), in-sample; its own defaults apply, see
    FORM_DEFAULTS)."""
    train_omega: float = 0.0
    """critic='policy': greediness of the next action in the TD target (0 samples pi+ alone, as the authors)."""
    train_candidates: int = 1
    """critic='policy': next-action samples per state in the TD target, the best by the online heads' min Q kept
    (1, as the authors: one sample)."""
    num_qs: int = 2
    """Q heads in the ensemble; G uses their minimum (or their lower confidence bound, q_agg='lcb')."""
    q_agg: str = "min"
    """How the heads make one value, for G, V's target and ranking candidates: 'min' (the paper's form) or 'lcb'
    (mean - q_pessimism * std over heads: pessimistic where the heads disagree; equals 'min' at 2 heads and 1)."""
    q_pessimism: float = 1.0
    """Standard deviations of the heads subtracted from their mean when q_agg='lcb'."""
    expectile: float = 0.9
    """Expectile of the V loss (0.5 = mean; higher leans to the best actions in the data)."""
    tau: float = 0.005
    """Polyak rate of the target Q."""
    # policies
    beta: float = 1.0
    """Temperature inside the positive weight sigmoid(beta * G + k)."""
    k: float = 0.0
    """Offset inside the positive weight sigmoid(beta * G + k) (the paper's shift factor, Appendix D.2): k > 0 gives
    pi+ more of the data, k < 0 less."""
    adv_norm: str = "none"
    """'none' (the paper's form) or 'running_std' (G divided by its running std)."""
    adv_norm_decay: float = 0.995
    """EMA decay of the running variance of G (adv_norm='running_std')."""
    shared_actor: bool = False
    """One network with a polarity embedding instead of two networks."""
    # sampling (defaults used by evaluation; both can be changed per call without retraining)
    omega: float = 0.0
    """Greediness at evaluation, fixed in advance per task (0 samples pi+; the authors' cfg is 1 + omega)."""
    num_candidates: int = 32
    """Candidates per state kept by `selection`; 1 turns selection off (plain guided sampling at omega)."""
    selection: str = "argmax"
    """How one of K > 1 candidates is kept: 'argmax' (rejection sampling: K guided candidates, the highest min Q)
    or 'tilt' (K candidates from pi+, one resampled with probability ∝ exp(omega * beta * G), G normalised as in
    training: samples mu * sigmoid(beta G) * exp(omega * beta * G) as K grows)."""

    def __post_init__(self):  # refused when the config is made (e.g. from the command line), before any data loads
        if self.critic not in CRITICS:
            raise UsageError(f"config.critic must be one of {', '.join(CRITICS)}, got {self.critic!r}")
        if not 0 <= self.train_omega < float("inf"):
            raise UsageError(f"config.train_omega must be a finite number >= 0 (0 samples pi+), got {self.train_omega}")
        if self.train_candidates < 1:
            raise UsageError(f"config.train_candidates must be >= 1 (1 samples one next action), got "
                             f"{self.train_candidates}")
        if self.adv_norm not in critic.ADV_NORMS:
            raise UsageError(f"config.adv_norm must be one of {', '.join(critic.ADV_NORMS)}, got {self.adv_norm!r}")
        if self.selection not in flow.SELECTIONS:
            raise UsageError(f"config.selection must be one of {', '.join(flow.SELECTIONS)}, got {self.selection!r}")
        if self.q_agg not in critic.Q_AGGS:
            raise UsageError(f"config.q_agg must be one of {', '.join(critic.Q_AGGS)}, got {self.q_agg!r}")
        if not 0 <= self.q_pessimism < float("inf"):
            raise UsageError(f"config.q_pessimism must be a finite number >= 0, got {self.q_pessimism}")

    @classmethod
    def form_defaults(cls, config: "DIPOLEConfig") -> dict:
        """The defaults of `config.critic`'s form that differ from the fields' own."""
        return dict(cls.FORM_DEFAULTS.get(config.critic, {}))

    @classmethod
    def saved_fields(cls, d: dict) -> dict:
        # checkpoints and results written before the critic field existed trained the 'iql' form
        return d if "critic" in d else {**d, "critic": "iql"}


CRITICS = ("policy", "iql")


class DIPOLEAgent(Agent):
    SAMPLING = frozenset({"omega", "num_candidates", "selection"})

    params: Any  # {'actor': ..., 'q': ..., 'v': ...}
    target_q: Any
    opt_state: Any
    rng: jax.Array
    adv_mean_ema: jax.Array
    adv_var_ema: jax.Array
    step: jax.Array
    config: DIPOLEConfig = static()
    actor_net: Any = static()  # PolarVelocityFields: (v+, v-) in one call
    q_net: Any = static()
    v_net: Any = static()
    tx: Any = static()
    obs_dim: int = static()
    action_dim: int = static()

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: DIPOLEConfig | None = None):
        config = config or DIPOLEConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        action_dim = int(ex_actions.shape[-1])
        actor = PolarVelocityFields(config.actor_hidden_dims, action_dim, shared=config.shared_actor)
        rng = stream_key(seed, "init")
        rng, a_key, q_key, v_key = jax.random.split(rng, 4)
        q, v, q_params, v_params = critic.make_iql_critic(config.value_hidden_dims, config.num_qs, ex_obs, ex_actions,
                                                          q_key, v_key)
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
            actor_net=actor,
            q_net=q,
            v_net=v,
            tx=tx,
            obs_dim=int(ex_obs.shape[-1]),
            action_dim=action_dim,
        )

    # ------------------------------------------------------------------ pieces
    def velocities(self, params, obs, x, t):
        """(v+, v-) each (B, A), from one batched call."""
        both = self.actor_net.apply(params["actor"], obs, x, t)
        return both[0], both[1]

    def q_values(self, params, obs, actions):
        return self.q_net.apply(params, obs, actions)

    def pessimistic_q(self, params, obs, actions):
        """The heads' one value (config.q_agg: their min, or mean - q_pessimism * std) -> (B,)."""
        return critic.aggregate_q(self.q_values(params, obs, actions), self.config.q_agg, self.config.q_pessimism)

    def advantage(self, qs, v):
        return critic.advantage(qs, v, self.config.q_agg, self.config.q_pessimism)

    def normalised_advantage(self, adv, mean_ema, var_ema, count):
        """G, or G divided by its running std (bias-corrected EMA), depending on config.adv_norm."""
        return critic.normalise_advantage(adv, var_ema, count, self.config.adv_norm, self.config.adv_norm_decay)

    def positive_weight(self, adv):
        """w = sigmoid(beta * G + k) in (0, 1); the negative policy's weight is 1 - w."""
        return jax.nn.sigmoid(self.config.beta * adv + self.config.k)

    def next_actions(self, obs, rng):
        """a' of the policy critic's TD target at states `obs` (B, D) -> (B, A), from the current networks, with no
        gradient: one Euler integration of pi+ (train_omega 0: v+ alone, one network pass per step) or of the guided
        field at train_omega, from noise drawn with `rng`; with train_candidates > 1, the best of that many samples
        by the online heads' min Q (config.q_agg)."""
        cfg = self.config
        if cfg.train_omega == 0:
            velocity = lambda o, x, t: self.actor_net.apply_positive(self.params["actor"], o, x, t)
        else:
            velocity = self.guided_velocity_fn(cfg.train_omega)
        sample_fn = lambda o, noise: flow.euler_sample(velocity, o, noise, cfg.flow_steps)
        score_fn = lambda o, a: self.pessimistic_q(self.params["q"], o, a)
        actions = flow.select_candidates(sample_fn, score_fn, rng, obs, cfg.train_candidates, self.action_dim)
        return jax.lax.stop_gradient(actions)

    # ------------------------------------------------------------------ losses
    def critic_loss(self, params, batch):
        cfg = self.config
        if cfg.critic == "policy":
            return critic.policy_losses(self.q_net.apply, self.v_net.apply, params, self.target_q, batch,
                                        batch["next_actions"], cfg.discount, cfg.expectile, cfg.q_agg,
                                        cfg.q_pessimism)
        return critic.iql_losses(self.q_net.apply, self.v_net.apply, params, self.target_q, batch, cfg.discount,
                                 cfg.expectile, cfg.q_agg, cfg.q_pessimism)

    def actor_loss(self, params, batch, rng, adv):
        x_t, t, target = flow.flow_matching_inputs(rng, batch["actions"])
        v_pos, v_neg = self.velocities(params, batch["observations"], x_t, t)
        w = self.positive_weight(adv)
        err_pos = flow.per_sample_flow_error(v_pos, target)
        err_neg = flow.per_sample_flow_error(v_neg, target)
        loss_pos = jnp.mean(w * err_pos)
        loss_neg = jnp.mean((1.0 - w) * err_neg)
        info = {"actor_pos_loss": loss_pos, "actor_neg_loss": loss_neg, "w_mean": w.mean(), "w_std": w.std(),
                "w_over_0.9": jnp.mean(w > 0.9), "w_under_0.1": jnp.mean(w < 0.1)}
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
        to weight the policies by a known advantage instead of the critic's G = min_i Q_i - V (the target heads with
        critic='policy', the online ones with 'iql').
        """
        cfg = self.config
        rng, loss_rng = jax.random.split(self.rng)
        if cfg.critic == "policy":  # a stream of its own: the policies' draws stay those of the iql form
            next_rng = jax.random.fold_in(loss_rng, 1)
            batch = {**batch, "next_actions": self.next_actions(batch["next_observations"], next_rng)}
        g_heads = self.target_q if cfg.critic == "policy" else self.params["q"]
        qs = self.q_values(g_heads, batch["observations"], batch["actions"])
        v = self.v_net.apply(self.params["v"], batch["observations"])
        # A batch may carry known advantages (bandits, analytic checks): then the critic's G is not used.
        raw_adv = batch["advantages"] if "advantages" in batch else self.advantage(qs, v)
        count = self.step + 1
        mean_ema, var_ema = critic.advantage_moments(self.adv_mean_ema, self.adv_var_ema, raw_adv, cfg.adv_norm_decay)
        adv = self.normalised_advantage(raw_adv, mean_ema, var_ema, count)

        new, info = self.apply_loss(self.total_loss, batch, loss_rng, adv, rng=rng, adv_mean_ema=mean_ema,
                                    adv_var_ema=var_ema)
        return new, {**info, "adv_mean": raw_adv.mean(), "adv_std": raw_adv.std(), "adv_used_std": adv.std()}

    # ------------------------------------------------------------------ acting
    def guided_velocity_fn(self, omega):
        def fn(obs, x, t):
            v_pos, v_neg = self.velocities(self.params, obs, x, t)
            return flow.guided_velocity(v_pos, v_neg, omega)

        return fn

    def sampling_advantage(self, obs, actions):
        """G(s, a) = min_i Q_i(s, a) - V(s) from the online heads, which rank candidates (the heads' lower bound with
        q_agg='lcb'), scaled as in training (divided by the running std of G when config.adv_norm = 'running_std').
        The policy critic weighted its policies by the target heads' G, a Polyak average of these."""
        g = self.advantage(self.q_values(self.params["q"], obs, actions), self.v_net.apply(self.params["v"], obs))
        count = jnp.maximum(self.step, 1)
        return self.normalised_advantage(g, self.adv_mean_ema, self.adv_var_ema, count)

    @partial(jax.jit, static_argnames=("num_candidates", "selection"))
    def _sample(self, obs, rng, omega, num_candidates: int, selection: str = "argmax"):
        tilt = selection == "tilt" and num_candidates > 1
        # 'tilt' draws its candidates from pi+ and puts omega into the resampling weights instead of the guidance
        guidance = jnp.zeros_like(omega) if tilt else omega
        sample_fn = lambda o, noise: flow.euler_sample(self.guided_velocity_fn(guidance), o, noise,
                                                       self.config.flow_steps)
        if tilt:
            score_fn = self.sampling_advantage
        else:  # argmax: the heads' min Q (or lcb) ranks a state's candidates as G does (V(s) and the std are shared)
            score_fn = lambda o, a: self.pessimistic_q(self.params["q"], o, a)
        return flow.select_candidates(sample_fn, score_fn, rng, obs, num_candidates, self.action_dim, selection,
                                      omega * self.config.beta)

    @partial(jax.jit, static_argnames=("num_candidates",))
    def candidates(self, obs, rng, omega, num_candidates: int):
        """What candidate selection sees, for diagnosis: for each state (B, D), K candidates from the guided
        sampler at omega and K from pi+, with their min Q and G (normalised as in training), and the effective
        sample size of the tilt weights exp(omega * beta * G) over the pi+ candidates."""
        batch = obs.shape[0]
        tiled = jnp.repeat(obs, num_candidates, axis=0)
        noise = jax.random.normal(rng, (batch * num_candidates, self.action_dim))
        out = {}
        for name, w in (("guided", omega), ("pos", jnp.zeros_like(omega))):
            a = flow.euler_sample(self.guided_velocity_fn(w), tiled, noise, self.config.flow_steps)
            q = self.pessimistic_q(self.params["q"], tiled, a)
            out[name] = {"actions": a.reshape(batch, num_candidates, -1), "q": q.reshape(batch, num_candidates),
                         "adv": self.sampling_advantage(tiled, a).reshape(batch, num_candidates)}
        out["tilt_ess"] = flow.effective_sample_size(omega * self.config.beta * out["pos"]["adv"])
        return out


def get_config() -> DIPOLEConfig:
    return DIPOLEConfig()
