"""Several reward terms dialled at inference (dipole.agents.terms), checked against what the derivation says.

2-D bandit (tests/oracles.py): one state, behaviour mu = three Gaussian modes in [-1, 1]^2, two reward terms with
known advantages A_x(a) = a0 and A_y(a) = a1 (given to the pairs' weights as `term_advantages`; the critic learns
Q_k = r_k from `term_rewards`, masks 0), beta 2 for both, adv_norm 'none'. For weights lambda the derivation gives:
- the guided velocity v_ref + sum_k lambda_k (v_k+ - v_k-) is the velocity field of mu exp(sum_k lambda_k beta A_k)
  at t = 1 (the intermediate marginals are the classifier-free-guidance approximation), so a trained agent must
  sample what the same Euler ODE driven by the *exact* fields of mu and of mu sigmoid(beta A_k), mu (1 - sigmoid)
  samples (tests/oracles.exact_term_guided_samples);
- tilt over K candidates from mu converges to mu exp(sum_k lambda_k beta G_k) itself as K grows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import oracles
import pytest

from dipole.agents.terms import TermsAgent, TermsConfig, parse_term_weights
from dipole.errors import UsageError
from dipole.runners.offline import train_chunk

BETA, FLOW_STEPS = 2.0, 20
POINTS = oracles.grid_2d(31)
MU = oracles.bandit2d_density(POINTS)
# Tolerance on a mean action (per dimension). First set at 0.04 from the 1-D bandit's 0.03 (tests/test_bandit.py);
# measured at these settings over the networks' init seeds 0 and 1, the largest error of the learned guided sampler
# against the exact guided ODE over the four weight settings below was 0.037 and 0.036, of which the sampling error
# of 4000 learned and 2000 exact draws is about 0.012 (one s.d.). The bound is that maximum plus a third, 0.05.
TIGHT_MEAN = 0.05
EXPECTILES = (0.9, 0.2)  # each term's own V expectile (checked below)


def bandit_data(n=100_000):
    d = oracles.bandit2d_transitions(n, seed=0)
    d["term_rewards"] = d["actions"].copy()
    d["term_advantages"] = d["actions"].copy()
    return d


def small_config(**kw):
    base = dict(terms=("x", "y"), actor_hidden_dims=(64, 64, 64), value_hidden_dims=(32, 32), beta=BETA,
                adv_norm="none", lr=1e-3, batch_size=512, flow_steps=FLOW_STEPS)
    return TermsConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def agent():
    data = bandit_data()
    config = small_config(term_expectiles=EXPECTILES)
    agent = TermsAgent.create(0, data["observations"][:1], data["actions"][:1], config)
    agent, _ = train_chunk(agent, jax.device_put(data), jax.random.PRNGKey(1), 4000, config.batch_size)
    return agent


def draw(agent, n=4000, seed=3, **kw):
    return np.asarray(agent.sample_actions(np.zeros((n, 1)), jax.random.PRNGKey(seed), **kw))


def exact(weights):
    sig = [1 / (1 + np.exp(-BETA * POINTS[:, k])) for k in range(2)]
    pairs = [(MU * s, MU * (1 - s)) for s in sig]
    return oracles.exact_term_guided_samples(POINTS, MU, pairs, weights, FLOW_STEPS)


def closed_form_mean(weights, adv):
    """Mean action under mu exp(sum_k lambda_k beta adv_k) on the grid; adv (M, 2)."""
    p = MU * np.exp(BETA * adv @ np.asarray(weights, float))
    return (p[:, None] * POINTS).sum(0) / p.sum()


def test_exact_combination_reproduces_the_behaviour_at_zero_weights():
    """Sanity of the reference: the exact reference field alone integrates to mu."""
    mean = exact((0.0, 0.0)).mean(0)
    assert np.abs(mean - (MU[:, None] * POINTS).sum(0)).max() < 0.02, mean


@pytest.mark.parametrize("weights", [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (-1.0, 2.0)])
def test_weights_combine_the_pairs_as_derived(agent, weights):
    learned = draw(agent, term_weights=dict(zip(("x", "y"), weights)))
    reference = exact(weights)
    assert np.abs(learned.mean(0) - reference.mean(0)).max() < TIGHT_MEAN, (weights, learned.mean(0),
                                                                            reference.mean(0))


def test_raising_one_weight_moves_its_term_and_leaves_the_other(agent):
    means = [draw(agent, term_weights={"x": 0.0, "y": w}).mean(0) for w in (0.0, 1.0, 2.0, 4.0)]
    ys = [m[1] for m in means]
    assert all(b > a for a, b in zip(ys, ys[1:])), ys
    # mu is symmetric in a0 and lambda_x = 0; the networks' error enters lambda_y times (-0.08 at lambda_y 4)
    assert max(abs(m[0]) for m in means[:3]) < TIGHT_MEAN, means


def test_tilt_converges_to_the_closed_form_of_the_agents_own_advantages(agent):
    weights = (1.0, 1.0)
    g = np.asarray(agent.sampling_advantage(jnp.zeros((len(POINTS), 1)), jnp.asarray(POINTS, jnp.float32)))
    target = closed_form_mean(weights, g)
    guided, tilted = (np.abs(draw(agent, n=1000, term_weights={"x": 1.0, "y": 1.0}, num_candidates=k,
                                  selection="tilt").mean(0) - target).max() for k in (1, 256))
    # K 1 is the guided ODE (greedier than the closed form here: 0.04 off in a0); tilt over 256 comes closer
    assert tilted < TIGHT_MEAN and tilted < guided, (tilted, guided, target)


def test_argmax_picks_the_highest_weighted_advantage(agent):
    k1 = draw(agent, n=1000, term_weights={"x": 0.0, "y": 1.0})
    k32 = draw(agent, n=1000, term_weights={"x": 0.0, "y": 1.0}, num_candidates=32)
    assert k32[:, 1].mean() > k1[:, 1].mean() + 0.2, (k32.mean(0), k1.mean(0))


def test_guard_keeps_only_candidates_whose_guard_term_passes(agent):
    guarded = agent.replace(config=agent.config.replace(guard_term="y", guard_threshold=0.0))
    # rank by x only; the guard on y (V_y is the 0.2-expectile of a1, so G_y >= 0 for more than half of mu's actions:
    # among 64 candidates at least one passes but with probability below 2^-64)
    a = draw(guarded, n=500, term_weights={"x": 1.0, "y": 0.0}, num_candidates=64)
    g = np.asarray(guarded.sampling_advantage(jnp.zeros((len(a), 1)), jnp.asarray(a)))
    assert g[:, 1].min() >= 0.0, g[:, 1].min()
    # a threshold no candidate reaches: the guard falls back to the candidate with the highest G_y
    none_pass = agent.replace(config=agent.config.replace(guard_term="y", guard_threshold=1e9))
    b = draw(none_pass, n=500, term_weights={"x": 1.0, "y": 0.0}, num_candidates=64)
    assert b[:, 1].mean() > a[:, 1].mean() + 0.1, (b.mean(0), a.mean(0))


def test_term_weights_from_a_string_equal_a_dict(agent):
    a = draw(agent, n=200, term_weights="x=0.5, y=2")
    b = draw(agent, n=200, term_weights={"x": 0.5, "y": 2.0})
    assert np.array_equal(a, b)
    assert parse_term_weights("speed=1,safety=4") == {"speed": 1.0, "safety": 4.0}


def test_bad_term_weights_are_refused(agent):
    with pytest.raises(UsageError, match=r"terms are \['x', 'y'\]"):
        agent.sample_actions(np.zeros(1), jax.random.PRNGKey(0), term_weights={"speed": 1.0})
    with pytest.raises(UsageError, match="TERM=WEIGHT"):
        parse_term_weights("safety")
    with pytest.raises(UsageError, match="not a number"):
        parse_term_weights("safety=high")
    with pytest.raises(UsageError, match="instead of one omega"):
        agent.sample_actions(np.zeros(1), jax.random.PRNGKey(0), omega=1.0)


@pytest.mark.parametrize("kw, message", [
    (dict(term_betas=(1.0,)), r"term_betas needs one value per term \['x', 'y'\]"),
    (dict(term_expectiles=(0.9, 1.5)), r"expectiles must lie in \(0, 1\)"),
    (dict(terms=("x", "x")), "distinct non-empty names"),
    (dict(guard_term="safety"), "guard_term 'safety' is not one of the terms"),
    (dict(term_weights=(1.0, float("nan"))), "term_weights must be finite"),
])
def test_bad_configs_are_refused_when_made(kw, message):
    with pytest.raises(UsageError, match=message):
        small_config(**kw)


def test_data_without_term_rewards_is_refused():
    d = oracles.bandit2d_transitions(1000, seed=0)
    agent = TermsAgent.create(0, d["observations"][:1], d["actions"][:1], small_config())
    with pytest.raises(UsageError, match="reward per term"):
        agent.update(jax.tree_util.tree_map(jnp.asarray, {k: v[:8] for k, v in d.items()}))


def test_term_expectiles_set_each_terms_value_function(agent):
    """V_k is the term's own expectile of Q_k = r_k (one state, masks 0): within 0.05 of the expectile of the data's
    r_k computed by bisection (tests/oracles.expectile) for each term's own tau."""
    d = bandit_data()
    v = np.asarray(agent.v_net.apply(agent.params["v"], jnp.zeros((1, 1))))[0]
    w = np.full(len(d["actions"]), 1 / len(d["actions"]))
    want = [oracles.expectile(d["actions"][:, k], w, tau) for k, tau in enumerate(EXPECTILES)]
    assert np.abs(v - want).max() < 0.05, (v, want)
