"""Neural networks shared by every agent: MLP, Q ensemble, V, flow velocity fields, Gaussian actor."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def default_init(scale: float = 1.0):
    return nn.initializers.variance_scaling(scale, "fan_avg", "uniform")


class MLP(nn.Module):
    """Plain MLP; GELU between layers, optional LayerNorm after each hidden layer."""

    hidden_dims: Sequence[int]
    out_dim: int
    layer_norm: bool = False
    final_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        for size in self.hidden_dims:
            x = nn.Dense(size, kernel_init=default_init())(x)
            x = nn.gelu(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
        return nn.Dense(self.out_dim, kernel_init=default_init(self.final_scale))(x)


class ValueNet(nn.Module):
    """V(s) -> (B,); with `outputs` = T, one value per reward term -> (B, T)."""

    hidden_dims: Sequence[int]
    layer_norm: bool = True
    outputs: int | None = None

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_dims, self.outputs or 1, self.layer_norm)(obs)
        return out if self.outputs else out[..., 0]


class QEnsemble(nn.Module):
    """Q_i(s, a) for i < num_qs, evaluated in one batched call -> (num_qs, B); with `outputs` = T, one value per
    reward term -> (num_qs, B, T)."""

    hidden_dims: Sequence[int]
    num_qs: int = 2
    layer_norm: bool = True
    outputs: int | None = None

    @nn.compact
    def __call__(self, obs, actions):
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_qs,
        )
        x = jnp.concatenate([obs, actions], axis=-1)
        out = ensemble(self.hidden_dims, self.outputs or 1, self.layer_norm)(x)
        return out if self.outputs else out[..., 0]


class VelocityField(nn.Module):
    """v(s, x_t, t) -> velocity of the flow from noise (t=0) to action (t=1)."""

    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, x, t):
        t = jnp.broadcast_to(jnp.reshape(t, t.shape + (1,) * (x.ndim - t.ndim)), x.shape[:-1] + (1,))
        h = jnp.concatenate([obs, x, t], axis=-1)
        return MLP(self.hidden_dims, self.action_dim, self.layer_norm)(h)


class LabelledVelocityField(nn.Module):
    """One velocity network conditioned on a discrete label through a learned embedding: v(s, x, t, label)."""

    hidden_dims: Sequence[int]
    action_dim: int
    num_labels: int
    embed_dim: int = 16
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, x, t, labels):
        emb = nn.Embed(self.num_labels, self.embed_dim, name="label_embedding")(labels)
        emb = jnp.broadcast_to(emb, x.shape[:-1] + (self.embed_dim,))
        field = VelocityField(self.hidden_dims, self.action_dim, self.layer_norm)
        return field(jnp.concatenate([obs, emb], axis=-1), x, t)


class PolarVelocityFields(nn.Module):
    """The positive and the negative velocity fields of DIPOLE, evaluated together -> (2, B, A).

    Index 0 is v+ (high-advantage policy), index 1 is v- (low-advantage policy).
    `shared=False`: two separate MLPs, stacked with vmap so one call evaluates both.
    `shared=True`: one MLP conditioned on a learned polarity embedding, evaluated on both labels at once.
    """

    hidden_dims: Sequence[int]
    action_dim: int
    shared: bool = False
    embed_dim: int = 16
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, x, t):
        if not self.shared:
            pair = nn.vmap(
                VelocityField,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=None,
                out_axes=0,
                axis_size=2,
            )
            return pair(self.hidden_dims, self.action_dim, self.layer_norm)(obs, x, t)
        field = LabelledVelocityField(self.hidden_dims, self.action_dim, 2, self.embed_dim, self.layer_norm,
                                      name="polarity_field")
        labels = jnp.arange(2).reshape((2,) + (1,) * (x.ndim - 1))
        stack = lambda a: jnp.broadcast_to(a, (2,) + jnp.shape(a))
        return field(stack(obs), stack(x), stack(t), labels)

    @nn.nowrap
    def apply_positive(self, variables, obs, x, t):
        """v+ alone -> (B, A), equal to `apply(variables, obs, x, t)[0]` at half the cost: one network pass (the
        policy-evaluation critic integrates pi+ for its next actions)."""
        params = variables["params"]
        if not self.shared:
            first = jax.tree_util.tree_map(lambda p: p[0], params["VmapVelocityField_0"])
            return VelocityField(self.hidden_dims, self.action_dim, self.layer_norm).apply({"params": first}, obs, x, t)
        field = LabelledVelocityField(self.hidden_dims, self.action_dim, 2, self.embed_dim, self.layer_norm)
        return field.apply({"params": params["polarity_field"]}, obs, x, t, jnp.zeros((), jnp.int32))


class GaussianActor(nn.Module):
    """Tanh-squashed mean with a state-independent log std (IQL/AWR style) -> (mean, log_std)."""

    hidden_dims: Sequence[int]
    action_dim: int
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs):
        mean = jnp.tanh(MLP(self.hidden_dims, self.action_dim)(obs))
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
