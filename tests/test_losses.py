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


def test_q_aggregation_hand_computed():
    qs = jnp.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0], [7.0, 2.0], [9.0, 2.0]])  # 5 heads, 2 samples
    assert np.allclose(critic.aggregate_q(qs, "min"), [1.0, 2.0])
    # mean 5, population std sqrt(8) over heads for sample 0; sample 1 has no spread
    assert np.allclose(critic.aggregate_q(qs, "lcb", 0.5), [5.0 - 0.5 * np.sqrt(8.0), 2.0], atol=1e-6)
    assert np.allclose(critic.aggregate_q(qs, "lcb", 0.0), [5.0, 2.0])
    # two heads at pessimism 1: (a + b)/2 - |a - b|/2 = min(a, b)
    two = jnp.asarray(np.random.default_rng(0).normal(size=(2, 100)), jnp.float32)
    assert np.allclose(critic.aggregate_q(two, "lcb", 1.0), jnp.min(two, axis=0), atol=1e-6)


def test_value_target_uses_the_heads_aggregate():
    # V's expectile target is the aggregate of the target heads: with 3 heads [0, 3, 6] and V = 0,
    # min -> Qt = 0 (loss 0); lcb at pessimism 0 -> Qt = mean 3, expectile 0.5 -> 0.5 * 9
    obs, actions = jnp.zeros((1, 1)), jnp.zeros((1, 1))
    batch = {"observations": obs, "actions": actions, "next_observations": obs, "rewards": jnp.zeros(1),
             "masks": jnp.zeros(1)}
    q_apply = lambda p, o, a: jnp.array([[0.0], [3.0], [6.0]])
    v_apply = lambda p, o: jnp.zeros(o.shape[0])
    params = {"q": None, "v": None}
    _, info = critic.iql_losses(q_apply, v_apply, params, None, batch, 0.99, 0.5)
    assert np.isclose(float(info["v_loss"]), 0.0)
    _, info = critic.iql_losses(q_apply, v_apply, params, None, batch, 0.99, 0.5, "lcb", 0.0)
    assert np.isclose(float(info["v_loss"]), 4.5)


def test_lcb_of_two_heads_at_pessimism_one_trains_as_min():
    batch = jax.tree_util.tree_map(jnp.asarray, random_transitions(64))
    agents = [DIPOLEAgent.create(0, np.zeros(3), np.zeros(2), DIPOLEConfig(**TINY, q_agg=agg, q_pessimism=1.0))
              for agg in ("min", "lcb")]
    for _ in range(5):
        agents = [a.update(batch)[0] for a in agents]
    for x, y in zip(jax.tree_util.tree_leaves(agents[0].params), jax.tree_util.tree_leaves(agents[1].params)):
        assert np.allclose(np.asarray(x), np.asarray(y), atol=1e-5)
    obs = batch["observations"][:4]
    key = jax.random.PRNGKey(1)
    for sel in ("argmax", "tilt"):
        a, b = (ag.sample_actions(obs, key, omega=1.0, num_candidates=8, selection=sel) for ag in agents)
        assert np.allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_more_pessimism_lowers_the_advantage_where_heads_disagree():
    agent = DIPOLEAgent.create(0, np.zeros(3), np.zeros(2), DIPOLEConfig(**TINY, num_qs=5, q_agg="lcb"))
    batch = jax.tree_util.tree_map(jnp.asarray, random_transitions(64))
    qs = agent.q_values(agent.params["q"], batch["observations"], batch["actions"])
    v = agent.v_net.apply(agent.params["v"], batch["observations"])
    spread = np.asarray(jnp.std(qs, axis=0))
    assert qs.shape == (5, 64) and spread.min() > 0
    g1 = np.asarray(critic.advantage(qs, v, "lcb", 1.0))
    g3 = np.asarray(critic.advantage(qs, v, "lcb", 3.0))
    assert np.allclose(g1 - g3, 2.0 * spread, atol=1e-5)
