"""DIPOLE with reward terms dialled at inference: one dichotomous pair per reward term, from one training run.

The data carries a reward per term, `term_rewards` (N, T) (driving: speed, safety, lane keeping). Each term k has
its own IQL critic output (Q_k with its own expectile for V_k) and advantage G_k = agg_i Q_ik - V_k, divided by its
running std by default (terms live on different scales). One velocity network with a label embedding holds
- a reference field v_0 fitted to every sample (the behaviour policy mu),
- for every term a positive field v_k+ fitted with weights w_k = sigmoid(beta_k G_k), and a negative field v_k- fitted
  with 1 - w_k.
Since pi_k+ / pi_k- = exp(beta_k G_k) (Z_k- / Z_k+), the user's weights lambda_k combine them as

    v = v_0 + sum_k lambda_k (v_k+ - v_k-),

whose target at t = 1 is mu(a|s) exp(sum_k lambda_k beta_k G_k(s, a)): the behaviour policy tilted by the weighted
sum of the terms' advantages; lambda = 0 samples mu. As with single-reward guidance, the intermediate marginals are
the classifier-free-guidance approximation; `selection='tilt'` (K candidates from mu, one resampled with probability
proportional to exp(sum_k lambda_k beta_k G_k)) converges to the target itself as K grows. The derivation is in
docs/algorithm.md ("Several reward terms").

Single-reward DIPOLE (`dipole.agents.dipole`) is a separate agent and unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents.base import Agent, AgentConfig, as_batch2d, make_optimizer, static
from dipole.errors import UsageError
from dipole.nn import critic, flow
from dipole.nn.networks import LabelledVelocityField, QEnsemble, ValueNet
from dipole.seeding import stream_key


@dataclasses.dataclass(frozen=True)
class TermsConfig(AgentConfig):
    agent: ClassVar[str] = "dipole-terms"
    INFERENCE_FIELDS: ClassVar[tuple] = ("flow_steps", "term_weights", "num_candidates", "selection", "guard_term",
                                         "guard_threshold")
    SHAPE_FIELDS: ClassVar[tuple] = ("actor_hidden_dims", "value_hidden_dims", "num_qs", "terms")

    terms: tuple[str, ...] = ("speed", "safety", "lane")
    """Names of the reward terms, in the order of the data's `term_rewards` columns."""
    # critic (IQL, one output per term)
    num_qs: int = 2
    """Q heads in the ensemble, each with one output per term; G_k uses their minimum (or lcb, q_agg)."""
    q_agg: str = "min"
    """How the heads make one value per term: 'min' or 'lcb' (mean - q_pessimism * std over heads)."""
    q_pessimism: float = 1.0
    """Standard deviations of the heads subtracted from their mean when q_agg='lcb'."""
    expectile: float = 0.9
    """Expectile of every term's V loss unless term_expectiles says otherwise."""
    term_expectiles: tuple[float, ...] = ()
    """One expectile per term (below 0.5 is pessimistic: a risky action is valued by its unlucky outcomes);
    empty: `expectile` for every term."""
    tau: float = 0.005
    """Polyak rate of the target Q."""
    # policies
    beta: float = 1.0
    """Temperature inside every term's weight sigmoid(beta_k G_k) unless term_betas says otherwise."""
    term_betas: tuple[float, ...] = ()
    """One temperature per term; empty: `beta` for every term."""
    adv_norm: str = "running_std"
    """'running_std' (each G_k divided by its running std, so beta sets the same sharpness for every term) or
    'none'."""
    adv_norm_decay: float = 0.995
    """EMA decay of the running variance of each G_k."""
    # sampling (defaults used by evaluation; all can be changed per call without retraining)
    term_weights: tuple[float, ...] = ()
    """The weights lambda_k used when a call names none, one per term (empty: 1 for every term)."""
    num_candidates: int = 1
    """Candidates per state kept by `selection`; 1 turns selection off."""
    selection: str = "argmax"
    """'argmax' (K guided candidates, the highest sum_k lambda_k beta_k G_k) or 'tilt' (K candidates from mu, one
    resampled with probability proportional to exp(sum_k lambda_k beta_k G_k))."""
    guard_term: str = ""
    """With K > 1: a term (e.g. 'safety') whose normalised G must be at least guard_threshold for a candidate to be
    kept; when no candidate passes, the one with the highest G of that term is kept. Empty: no guard."""
    guard_threshold: float = 0.0
    """The guard's threshold on the guard term's G (normalised as in training)."""

    def __post_init__(self):
        n = len(self.terms)
        if n == 0 or len(set(self.terms)) != n or not all(isinstance(t, str) and t for t in self.terms):
            raise UsageError(f"config.terms must be distinct non-empty names, one per reward term, got {self.terms!r}")
        for name, values in (("term_expectiles", self.term_expectiles), ("term_betas", self.term_betas),
                             ("term_weights", self.term_weights)):
            if len(values) not in (0, n):
                raise UsageError(f"config.{name} needs one value per term {list(self.terms)} (or none), got "
                                 f"{len(values)}: {values!r}")
        for e in self.term_expectiles or (self.expectile,):
            if not 0 < e < 1:
                raise UsageError(f"config expectiles must lie in (0, 1), got {e}")
        for b in self.term_betas or (self.beta,):
            if not 0 < b < math.inf:
                raise UsageError(f"config betas must be finite numbers > 0, got {b}")
        if not all(math.isfinite(w) for w in self.term_weights):
            raise UsageError(f"config.term_weights must be finite numbers, got {self.term_weights!r}")
        if self.adv_norm not in critic.ADV_NORMS:
            raise UsageError(f"config.adv_norm must be one of {', '.join(critic.ADV_NORMS)}, got {self.adv_norm!r}")
        if self.selection not in flow.SELECTIONS:
            raise UsageError(f"config.selection must be one of {', '.join(flow.SELECTIONS)}, got {self.selection!r}")
        if self.q_agg not in critic.Q_AGGS:
            raise UsageError(f"config.q_agg must be one of {', '.join(critic.Q_AGGS)}, got {self.q_agg!r}")
        if not 0 <= self.q_pessimism < math.inf:
            raise UsageError(f"config.q_pessimism must be a finite number >= 0, got {self.q_pessimism}")
        if self.guard_term and self.guard_term not in self.terms:
            raise UsageError(f"config.guard_term {self.guard_term!r} is not one of the terms {list(self.terms)} "
                             "(empty: no guard)")

    @property
    def expectiles(self) -> tuple[float, ...]:
        return self.term_expectiles or (self.expectile,) * len(self.terms)

    @property
    def betas(self) -> tuple[float, ...]:
        return self.term_betas or (self.beta,) * len(self.terms)

    @property
    def default_weights(self) -> tuple[float, ...]:
        return self.term_weights or (1.0,) * len(self.terms)


def parse_term_weights(text: str) -> dict:
    """'speed=1,safety=4' -> {'speed': 1.0, 'safety': 4.0} (names are checked against an agent's terms later)."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"term weight {item!r} must look like TERM=WEIGHT (e.g. safety=4)")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise UsageError(f"term weight {key.strip()}={value!r} is not a number") from None
    return out


class TermsAgent(Agent):
    SAMPLING = frozenset({"num_candidates", "selection", "term_weights"})

    params: Any  # {'actor': ..., 'q': ..., 'v': ...}
    target_q: Any
    opt_state: Any
    rng: jax.Array
    adv_mean_ema: jax.Array  # (T,)
    adv_var_ema: jax.Array  # (T,)
    step: jax.Array
    config: TermsConfig = static()
    actor_net: Any = static()  # labels: 0 reference, 1 + 2k positive of term k, 2 + 2k negative of term k
    q_net: Any = static()
    v_net: Any = static()
    tx: Any = static()
    obs_dim: int = static()
    action_dim: int = static()

    @property
    def num_terms(self) -> int:
        return len(self.config.terms)

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: TermsConfig | None = None):
        config = config or TermsConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        action_dim, n = int(ex_actions.shape[-1]), len(config.terms)
        actor = LabelledVelocityField(config.actor_hidden_dims, action_dim, num_labels=2 * n + 1)
        q = QEnsemble(config.value_hidden_dims, num_qs=config.num_qs, outputs=n)
        v = ValueNet(config.value_hidden_dims, outputs=n)
        rng = stream_key(seed, "init")
        rng, a_key, q_key, v_key = jax.random.split(rng, 4)
        batch = ex_obs.shape[0]
        params = {
            "actor": actor.init(a_key, ex_obs, ex_actions, jnp.zeros((batch,)), jnp.zeros((batch,), jnp.int32)),
            "q": q.init(q_key, ex_obs, ex_actions),
            "v": v.init(v_key, ex_obs),
        }
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=params["q"], opt_state=tx.init(params), rng=rng,
                   adv_mean_ema=jnp.zeros((n,)), adv_var_ema=jnp.zeros((n,)), step=jnp.zeros((), jnp.int32),
                   config=config, actor_net=actor, q_net=q, v_net=v, tx=tx, obs_dim=int(ex_obs.shape[-1]),
                   action_dim=action_dim)

    @classmethod
    def check_dataset(cls, config, dataset) -> None:
        arrays = getattr(dataset, "arrays", dataset)
        if "term_rewards" not in arrays:
            raise UsageError(f"{getattr(dataset, 'name', 'the dataset')}: agent 'dipole-terms' needs a reward per term "
                             f"('term_rewards', shape (N, {len(config.terms)})); highway datasets carry them (terms "
                             "speed, safety, lane); other data needs the field added")
        names = getattr(dataset, "term_names", None)
        if names is not None and tuple(names) != tuple(config.terms):
            raise UsageError(f"{dataset.name}: its reward terms are {list(names)} but config.terms is "
                             f"{list(config.terms)}; set --config.terms {','.join(names)}")
        if arrays["term_rewards"].shape[1] != len(config.terms):
            raise UsageError(f"{getattr(dataset, 'name', 'the dataset')}: 'term_rewards' has "
                             f"{arrays['term_rewards'].shape[1]} columns but config.terms names {len(config.terms)}: "
                             f"{list(config.terms)}")

    # ------------------------------------------------------------------ pieces
    def fields(self, params, obs, x, t):
        """Every labelled velocity field at once -> (2T + 1, B, A): reference, then (v_k+, v_k-) per term."""
        labels = jnp.arange(2 * self.num_terms + 1)
        one = lambda label: self.actor_net.apply(params["actor"], obs, x, t, jnp.full(x.shape[:-1], label))
        return jax.vmap(one)(labels)

    def term_advantages(self, params, obs, actions):
        """G_k(s, a) = agg_i Q_ik(s, a) - V_k(s) -> (B, T), no gradient into the critic."""
        qs = self.q_net.apply(params["q"], obs, actions)
        v = self.v_net.apply(params["v"], obs)
        return critic.advantage(qs, v, self.config.q_agg, self.config.q_pessimism)

    def normalised(self, adv, var_ema, count):
        return critic.normalise_advantage(adv, var_ema, count, self.config.adv_norm, self.config.adv_norm_decay)

    # ------------------------------------------------------------------ losses
    def critic_loss(self, params, batch):
        """Every term's IQL critic: expectile V_k (its own expectile) and TD Q_k to r_k + gamma mask V_k(s'), summed
        over terms."""
        cfg = self.config
        return critic.iql_losses(self.q_net.apply, self.v_net.apply, params, self.target_q,
                                 {**batch, "rewards": batch["term_rewards"]}, cfg.discount,
                                 jnp.asarray(cfg.expectiles), cfg.q_agg, cfg.q_pessimism)

    def actor_loss(self, params, batch, rng, adv):
        x_t, t, target = flow.flow_matching_inputs(rng, batch["actions"])
        err = flow.per_sample_flow_error(self.fields(params, batch["observations"], x_t, t), target[None])  # (L, B)
        w = jax.nn.sigmoid(jnp.asarray(self.config.betas) * adv).T  # (T, B)
        loss_ref = jnp.mean(err[0])
        loss_pos = jnp.sum(jnp.mean(w * err[1::2], axis=1))
        loss_neg = jnp.sum(jnp.mean((1.0 - w) * err[2::2], axis=1))
        per_term = {f"w_mean_{name}": w[k].mean() for k, name in enumerate(self.config.terms)}
        return loss_ref + loss_pos + loss_neg, {"actor_ref_loss": loss_ref, "actor_pos_loss": loss_pos,
                                                "actor_neg_loss": loss_neg, **per_term}

    def total_loss(self, params, batch, rng, adv):
        c_loss, c_info = self.critic_loss(params, batch)
        a_loss, a_info = self.actor_loss(params, batch, rng, adv)
        return c_loss + a_loss, {**c_info, **a_info}

    @jax.jit
    def update(self, batch):
        """One gradient step on the critic and every field.

        batch: observations, actions, term_rewards (B, T), masks, next_observations, and optionally
        `term_advantages` (B, T) to weight the pairs by known advantages instead of the critic's G (bandits,
        analytic checks; the critic still learns from term_rewards).
        """
        self.check_dataset(self.config, batch)  # at trace time: a batch without the terms' rewards is refused
        cfg = self.config
        rng, loss_rng = jax.random.split(self.rng)
        raw = (batch["term_advantages"] if "term_advantages" in batch
               else self.term_advantages(self.params, batch["observations"], batch["actions"]))
        count = self.step + 1
        mean_ema, var_ema = critic.advantage_moments(self.adv_mean_ema, self.adv_var_ema, raw, cfg.adv_norm_decay)
        adv = self.normalised(raw, var_ema, count)
        new, info = self.apply_loss(self.total_loss, batch, loss_rng, adv, rng=rng, adv_mean_ema=mean_ema,
                                    adv_var_ema=var_ema)
        for k, name in enumerate(cfg.terms):  # one scalar per term, so metrics.csv has a column each
            info[f"adv_mean_{name}"], info[f"adv_std_{name}"] = raw[:, k].mean(), raw[:, k].std()
        return new, info

    # ------------------------------------------------------------------ acting
    def weight_vector(self, term_weights: Mapping[str, float] | str | None = None) -> np.ndarray:
        """lambda (T,) from the config's defaults, with the terms named in `term_weights` (a dict, or
        'speed=1,safety=4') replaced."""
        if isinstance(term_weights, str):
            term_weights = parse_term_weights(term_weights)
        lam = dict(zip(self.config.terms, self.config.default_weights))
        for name, value in (term_weights or {}).items():
            if name not in lam:
                raise UsageError(f"term weight for {name!r}: this agent's terms are {list(self.config.terms)}")
            if not math.isfinite(float(value)):
                raise UsageError(f"term weight {name}={value} must be a finite number")
            lam[name] = float(value)
        return np.asarray([lam[t] for t in self.config.terms], np.float32)

    def reference_velocity_fn(self):
        """v_0 alone (the behaviour policy): one network call per step instead of 2T + 1."""
        def fn(obs, x, t):
            return self.actor_net.apply(self.params["actor"], obs, x, t, jnp.zeros(x.shape[:-1], jnp.int32))

        return fn

    def guided_velocity_fn(self, lam):
        def fn(obs, x, t):
            f = self.fields(self.params, obs, x, t)
            return f[0] + jnp.einsum("k,kba->ba", lam, f[1::2] - f[2::2])

        return fn

    def sampling_advantage(self, obs, actions):
        """G_k(s, a) per term (B, T), normalised as the pairs were weighted."""
        g = self.term_advantages(self.params, obs, actions)
        return self.normalised(g, self.adv_var_ema, jnp.maximum(self.step, 1))

    @partial(jax.jit, static_argnames=("num_candidates", "selection"))
    def _sample(self, obs, rng, lam, num_candidates: int, selection: str = "argmax"):
        cfg = self.config
        steps = cfg.flow_steps
        if num_candidates == 1:
            noise = jax.random.normal(rng, (obs.shape[0], self.action_dim))
            return flow.euler_sample(self.guided_velocity_fn(lam), obs, noise, steps)
        batch = obs.shape[0]
        rng, pick_rng = jax.random.split(rng)
        # 'tilt' draws its candidates from mu (lambda = 0) and puts the weights into the resampling instead
        velocity = self.reference_velocity_fn() if selection == "tilt" else self.guided_velocity_fn(lam)
        tiled, actions = flow.draw_candidates(lambda o, noise: flow.euler_sample(velocity, o, noise, steps), rng, obs,
                                              num_candidates, self.action_dim)
        g = self.sampling_advantage(tiled, actions.reshape(batch * num_candidates, -1)).reshape(
            batch, num_candidates, -1)
        logw = jnp.sum(g * lam * jnp.asarray(cfg.betas), axis=-1)  # (B, K)
        if cfg.guard_term:
            g_guard = g[..., cfg.terms.index(cfg.guard_term)]
            passing = g_guard >= cfg.guard_threshold
            logw = jnp.where(passing, logw, -jnp.inf)
        pick = flow.pick_candidate(logw, selection, pick_rng)
        if cfg.guard_term:  # no candidate passes: keep the one the guard term rates highest
            pick = jnp.where(passing.any(axis=1), pick, jnp.argmax(g_guard, axis=1))
        return actions[jnp.arange(batch), pick]


def get_config() -> TermsConfig:
    return TermsConfig()
