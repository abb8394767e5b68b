"""Loss pieces against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import TINY, random_transitions

from dipole import DIPOLEAgent, DIPOLEConfig
from dipole.nn import critic, flow


def test_expectile_loss_hand_computed():
    # diff = Qt - V = [2, -1]; tau = 0.9: 0.9 * 4 = 3.6 and 0.1 * 1 = 0.1; mean 1.85
    v = jnp.array([1.0, 3.0])
    qt = jnp.array([3.0, 2.0])
    assert np.isclose(float(critic.value_loss(v, qt, 0.9)), 1.85)
    assert np.isclose(float(critic.value_loss(v, qt, 0.5)), 0.5 * (0.5 * 4 + 0.5 * 1))


def test_q_loss_hand_computed():
    qs = jnp.array([[1.0, 0.0], [2.0, 0.0]])  # 2 heads, 2 samples
    # targets: 1 + 0.5*1*2 = 2 ; 0 + 0.5*0*5 = 0  -> per-sample sums (1+0)=1, (0+0)=0 -> mean 0.5
    loss = critic.q_loss(qs, jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]), jnp.array([2.0, 5.0]), 0.5)
    assert np.isclose(float(loss), 0.5)


def test_weights_in_open_interval_and_sum_to_one():
    agent = DIPOLEAgent.create(0, np.zeros(3), np.zeros(2), DIPOLEConfig(**TINY, beta=3.0))
    adv = jnp.linspace(-5, 5, 101)
    w = agent.positive_weight(adv)
    assert bool(jnp.all((w > 0) & (w < 1)))
    assert np.allclose(np.asarray(w + (1 - w)), 1.0)
    assert np.isclose(float(agent.positive_weight(jnp.array(0.0))), 0.5)
    assert np.isclose(float(agent.positive_weight(jnp.array(1.0))), 1 / (1 + np.exp(-3.0)), atol=1e-6)


def test_actor_loss_gives_no_gradient_to_critic():
    agent = DIPOLEAgent.create(0, np.zeros(3), np.zeros(2), DIPOLEConfig(**TINY))
    batch = jax.tree_util.tree_map(jnp.asarray, random_transitions(64))
    qs = agent.q_values(agent.params["q"], batch["observations"], batch["actions"])
    v = agent.v_net.apply(agent.params["v"], batch["observations"])

    def actor_only(params):
        # advantage recomputed from the params being differentiated: any leak would show up as a gradient
        adv = critic.advantage(agent.q_values(params["q"], batch["observations"], batch["actions"]),
                               agent.v_net.apply(params["v"], batch["observations"]))
        return agent.actor_loss(params, batch, jax.random.PRNGKey(0), adv)[0]

    grads = jax.grad(actor_only)(agent.params)
    for part in ("q", "v"):
        assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads[part])), part
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(grads["actor"]))
    assert qs.shape == (2, 64) and v.shape == (64,)


def test_guided_velocity_combination():
    vp, vn = jnp.array([1.0, 2.0]), jnp.array([0.0, -1.0])
    assert np.allclose(flow.guided_velocity(vp, vn, 0.0), vp)  # omega 0 -> v+
    assert np.allclose(flow.guided_velocity(vp, vn, -1.0), vn)  # omega -1 -> v-
    assert np.allclose(flow.guided_velocity(vp, vn, 2.0), vn + 3 * (vp - vn))


def test_euler_sampler_integrates_constant_velocity_exactly():
    x = flow.euler_sample(lambda o, x, t: jnp.full_like(x, 0.5), None, jnp.zeros((4, 2)), 10)
    assert np.allclose(np.asarray(x), 0.5)
    x = flow.euler_sample(lambda o, x, t: jnp.full_like(x, 5.0), None, jnp.zeros((4, 2)), 10)
    assert np.allclose(np.asarray(x), 1.0)  # clipped to the action box


def test_running_std_normalisation_divides_by_std():
    agent = DIPOLEAgent.create(0, np.zeros(3), np.zeros(2), DIPOLEConfig(**TINY, adv_norm="running_std"))
    batch = jax.tree_util.tree_map(jnp.asarray, random_transitions(64))
    adv = jnp.asarray(np.random.default_rng(0).normal(scale=4.0, size=64), jnp.float32)
    batch["advantages"] = adv
    new, info = agent.update(batch)
    # after one step the debiased EMA variance equals the batch variance
    assert np.isclose(float(info["adv_used_std"]), 1.0, atol=1e-3)
    assert np.isclose(float(info["adv_std"]), float(adv.std()), rtol=1e-5)


def test_shared_and_separate_actors_give_pairs():
    for shared in (False, True):
        agent = DIPOLEAgent.create(0, np.zeros(3), np.zeros(2), DIPOLEConfig(**TINY, shared_actor=shared))
        r = np.random.default_rng(0)
        obs, x = jnp.asarray(r.normal(size=(5, 3))), jnp.asarray(r.normal(size=(5, 2)))
        vp, vn = agent.velocities(agent.params, obs, x, jnp.full(5, 0.3))
        assert vp.shape == vn.shape == (5, 2)
        assert not np.allclose(np.asarray(vp), np.asarray(vn))  # two distinct policies
