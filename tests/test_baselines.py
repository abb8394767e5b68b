"""Each baseline against a number known in advance, on the 1-D bandit of tests/oracles.py
(mu = 0.5 N(-0.5, 0.2^2) + 0.5 N(0.5, 0.2^2) on [-1, 1]; A(a) = a where an advantage is given)."""

import jax
import numpy as np
import oracles as analysis
import pytest

from dipole.agents import AGENTS
from dipole.runners.offline import train_chunk

GRID = np.linspace(-1, 1, 4001)
MU = analysis.bandit_density(GRID)
SMALL = dict(actor_hidden_dims=(64, 64, 64), value_hidden_dims=(64, 64), lr=1e-3, batch_size=512, flow_steps=20)


def trained(name, steps=3000, rewards=None, **overrides):
    data = analysis.bandit_transitions(100_000, seed=0)
    if rewards == "a":  # one-step bandit: Q(a) = r = a, no bootstrapping
        data["rewards"] = data["actions"][:, 0].copy()
        data["masks"] = np.zeros_like(data["masks"])
    agent_cls, config_cls = AGENTS[name]
    config = config_cls(**SMALL).replace(**overrides)
    agent = agent_cls.create(0, data["observations"][:1], data["actions"][:1], config)
    agent, _ = train_chunk(agent, jax.device_put(data), jax.random.PRNGKey(1), steps, config.batch_size)
    return agent


def draw(agent, n=20_000, seed=7, **kw):
    return np.asarray(agent.sample_actions(np.zeros((n, 1)), jax.random.PRNGKey(seed), **kw))[:, 0]


def test_bc_flow_reproduces_behaviour_mean_and_spread():
    s = draw(trained("bc"))
    mean, std = float((MU * GRID).sum()), float(np.sqrt((MU * GRID**2).sum()))  # 0 and ~0.54
    assert abs(s.mean() - mean) < 0.03 and abs(s.std() - std) < 0.03, (s.mean(), s.std(), mean, std)
    # bimodal, as the data: little mass between the modes
    assert np.mean(np.abs(s) < 0.1) < 0.08


def test_iql_awr_mean_is_the_advantage_weighted_mean():
    """A Gaussian fitted by AWR with weights exp(alpha A) has mean E_mu[a exp(alpha a)] / E_mu[exp(alpha a)]."""
    agent = trained("iql", alpha=2.0)
    w = MU * np.exp(2.0 * GRID)
    target = float((w * GRID).sum() / w.sum())
    act = float(draw(agent, n=1)[0])
    assert abs(act - target) < 0.03, (act, target)


def test_ifql_rejection_sampling_picks_high_q_actions():
    agent = trained("ifql", rewards="a")
    plain, best = draw(agent, num_candidates=1), draw(agent, num_candidates=32)
    assert abs(plain.mean()) < 0.05  # K = 1 is behaviour cloning
    # the max of 32 draws from the bimodal behaviour sits near its upper tail (~0.9); allow for critic error
    assert best.mean() > 0.7, best.mean()


def test_fql_onestep_policy_tracks_its_flow_when_q_is_flat():
    agent = trained("fql", alpha=100.0, flow_steps=10)  # rewards 0: Q is flat, distillation dominates
    student = draw(agent)
    import jax.numpy as jnp

    noise = jax.random.normal(jax.random.PRNGKey(7), (20_000, 1))
    teacher = np.asarray(agent.flow_actions(agent.params, jnp.zeros((20_000, 1)), noise))[:, 0]
    assert abs(student.mean() - teacher.mean()) < 0.05 and abs(student.std() - teacher.std()) < 0.05


def test_fql_onestep_policy_climbs_q_when_alpha_is_small():
    agent = trained("fql", steps=1000, rewards="a", alpha=0.1, flow_steps=10)  # mean 0.999 at 1000 and 3000 updates
    assert draw(agent).mean() > 0.6


def test_cfgrl_guidance_gains_advantage_as_weight_grows():
    agent = trained("cfgrl", label_dropout=0.2)
    # omega = 0 is w = 1: the 'optimal' conditional, i.e. mu restricted to A >= 0
    pos = MU * (GRID >= 0)
    target = float((pos * GRID).sum() / pos.sum())
    means = [float(draw(agent, omega=w).mean()) for w in (0.0, 1.0, 2.0, 4.0)]
    assert abs(means[0] - target) < 0.04, (means[0], target)
    assert all(b > a for a, b in zip(means, means[1:])), means


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_saves_and_loads(tmp_path, name):
    import dipole

    agent_cls, config_cls = AGENTS[name]
    config = config_cls(actor_hidden_dims=(8,), value_hidden_dims=(8,))
    agent = agent_cls.create(3, np.zeros((1, 4)), np.zeros((1, 2)), config)
    path = str(tmp_path / "a.dpl")
    agent.save(path)
    loaded = dipole.load(path)
    assert loaded.config == config and type(loaded) is agent_cls
    obs = np.random.default_rng(0).normal(size=(5, 4))
    assert np.array_equal(np.asarray(agent.sample_actions(obs, jax.random.PRNGKey(1))),
                          np.asarray(loaded.sample_actions(obs, jax.random.PRNGKey(1))))


def test_agents_without_knobs_refuse_them():
    agent_cls, config_cls = AGENTS["bc"]
    agent = agent_cls.create(0, np.zeros(2), np.zeros(2), config_cls(actor_hidden_dims=(8,)))
    with pytest.raises(ValueError, match="agent 'bc' has no greediness knob"):
        agent.sample_actions(np.zeros(2), jax.random.PRNGKey(0), omega=1.0)
    with pytest.raises(ValueError, match="agent 'bc' does not rank candidate actions by a critic"):
        agent.sample_actions(np.zeros(2), jax.random.PRNGKey(0), num_candidates=4)
