"""DIPOLE's two critic forms: the authors' policy-evaluation critic (the default) against hand-computed targets and a
chain with a closed form; the earlier IQL form unchanged, bit for bit up to float printing, against a fingerprint
recorded before the policy form existed."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, random_transitions

from dipole import DIPOLEAgent, DIPOLEConfig
from dipole.agents import build_config, make, make_config
from dipole.errors import UsageError
from dipole.nn import critic


def _agent(**fields):
    return DIPOLEAgent.create(0, np.zeros(3), np.zeros(2), DIPOLEConfig(**{**TINY, **fields}))


def _batch(n=64, seed=0):
    return jax.tree_util.tree_map(jnp.asarray, random_transitions(n, seed=seed))


def test_next_actions_are_an_euler_integration_of_pi_plus_from_the_same_noise():
    agent = _agent()
    obs = _batch()["next_observations"]
    key = jax.random.PRNGKey(5)
    x = jax.random.normal(key, (obs.shape[0], 2))
    n = agent.config.flow_steps
    for i in range(n):  # v+ is index 0 of the pair the actor network returns
        x = x + agent.actor_net.apply(agent.params["actor"], obs, x, jnp.full((obs.shape[0],), i / n))[0] / n
    np.testing.assert_allclose(np.asarray(agent.next_actions(obs, key)), np.clip(np.asarray(x), -1, 1), atol=1e-5)
    # with guidance for the next action, the guided field is integrated instead
    guided = _agent(train_omega=2.0)
    x = jax.random.normal(key, (obs.shape[0], 2))
    for i in range(n):
        vp, vn = guided.actor_net.apply(guided.params["actor"], obs, x, jnp.full((obs.shape[0],), i / n))
        x = x + (vn + 3.0 * (vp - vn)) / n
    np.testing.assert_allclose(np.asarray(guided.next_actions(obs, key)), np.clip(np.asarray(x), -1, 1), atol=1e-5)


def test_shared_network_positive_pass_equals_the_pair_pass():
    agent = _agent(shared_actor=True)
    b = _batch(16)
    t = jnp.linspace(0, 1, 16)
    both = agent.actor_net.apply(agent.params["actor"], b["observations"], b["actions"], t)
    positive = agent.actor_net.apply_positive(agent.params["actor"], b["observations"], b["actions"], t)
    np.testing.assert_allclose(positive, both[0], atol=1e-6)


def test_policy_td_target_by_hand_averages_target_heads_and_respects_masks():
    agent = _agent(num_qs=3)
    b = _batch(32)
    b = {**b, "masks": b["masks"].at[:8].set(0.0)}
    next_actions = agent.next_actions(b["next_observations"], jax.random.PRNGKey(1))
    # make the target heads differ from the online ones, so that using the wrong set would show
    target = jax.tree_util.tree_map(lambda p: p * 1.3, agent.params["q"])
    agent = agent.replace(target_q=target)
    loss, info = agent.critic_loss(agent.params, {**b, "next_actions": next_actions})
    q = np.asarray(agent.q_net.apply(agent.params["q"], b["observations"], b["actions"]), np.float64)  # (3, B)
    qt_next = np.asarray(agent.q_net.apply(target, b["next_observations"], next_actions), np.float64)  # (3, B)
    r, m, gamma = np.asarray(b["rewards"]), np.asarray(b["masks"]), agent.config.discount
    expected = 0.0
    for row in range(32):
        for i in range(3):
            for j in range(3):
                y = r[row] + gamma * m[row] * qt_next[j, row]
                expected += (q[i, row] - y) ** 2 / 3
    expected /= 32
    assert np.isclose(float(info["q_loss"]), expected, rtol=1e-5)
    # a masked row's target is its reward alone: with every row masked, next actions do not matter
    all_masked = {**b, "masks": jnp.zeros(32)}
    l1 = agent.critic_loss(agent.params, {**all_masked, "next_actions": next_actions})[1]["q_loss"]
    l2 = agent.critic_loss(agent.params, {**all_masked, "next_actions": -next_actions})[1]["q_loss"]
    assert float(l1) == float(l2)
    # every head regresses to every target head: the loss equals the one to their mean plus their spread
    y = r[None] + gamma * m[None] * qt_next
    to_mean = np.mean(np.sum((q - y.mean(0)[None]) ** 2, axis=0))
    spread = 3 * np.mean(np.var(y, axis=0))
    assert np.isclose(float(info["q_loss"]), to_mean + spread, rtol=1e-5)


def test_value_and_advantage_use_the_target_heads():
    agent = _agent()
    b = _batch(32)
    target = jax.tree_util.tree_map(lambda p: p * 0.7, agent.params["q"])
    agent = agent.replace(target_q=target)
    _, info = agent.critic_loss(agent.params, {**b, "next_actions": b["actions"]})
    qt = jnp.min(agent.q_net.apply(target, b["observations"], b["actions"]), axis=0)
    v = agent.v_net.apply(agent.params["v"], b["observations"])
    assert np.isclose(float(info["v_loss"]), float(critic.value_loss(v, qt, 0.9)), rtol=1e-6)
    # the policies' weights: sigmoid(beta * (min target Q - V) + k), read through the logged mean
    agent = agent.replace(config=agent.config.replace(beta=2.0, k=0.5))
    _, metrics = agent.update(b)
    w = jax.nn.sigmoid(2.0 * (qt - v) + 0.5)
    assert np.isclose(float(metrics["w_mean"]), float(w.mean()), rtol=1e-5)
    assert np.isclose(float(metrics["adv_mean"]), float((qt - v).mean()), rtol=1e-4, atol=1e-6)


def test_no_gradient_crosses_between_critic_and_actors():
    agent = _agent()
    b = _batch()

    def critic_only(params):  # next actions drawn from the params being differentiated: a leak would show
        a_next = agent.replace(params=params).next_actions(b["next_observations"], jax.random.PRNGKey(0))
        return agent.critic_loss(params, {**b, "next_actions": a_next})[0]

    grads = jax.grad(critic_only)(agent.params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads["actor"]))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(grads["q"]))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(grads["v"]))

    # the other direction (actor losses into the critic):
    # tests/test_losses.py::test_actor_loss_gives_no_gradient_to_critic


def test_k_shifts_the_weights_and_weight_statistics_are_logged():
    agent = _agent(beta=2.0, k=-1.0)
    g = jnp.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(agent.positive_weight(g), 1 / (1 + np.exp(-(2.0 * np.asarray(g) - 1.0))), rtol=1e-6)
    # known advantages: w = sigmoid(G) at beta 1, k 0 for G = -5, -3, 0, 3, 5 -> 0.0067, 0.047, 0.5, 0.953, 0.993
    agent = _agent(beta=1.0, k=0.0)
    b = _batch(5)
    _, info = agent.update({**b, "advantages": jnp.array([-5.0, -3.0, 0.0, 3.0, 5.0])})
    assert np.isclose(float(info["w_mean"]), 0.5, atol=1e-6)
    assert float(info["w_over_0.9"]) == pytest.approx(0.4)
    assert float(info["w_under_0.1"]) == pytest.approx(0.4)
    assert float(info["adv_mean"]) == pytest.approx(0.0)
    assert float(info["adv_std"]) == pytest.approx(np.std([-5, -3, 0, 3, 5]))


def test_chain_policy_critic_evaluates_pi_plus_and_iql_critic_the_expectile():
    """s0 -> s1 with reward 0 whatever the action; at s1 the episode ends with reward 1 for action +0.5 and 0 for
    -0.5, the behaviour's two modes, equally often. With expectile tau, V(s1) = tau (the expectile of {0, 1} at equal
    weights). pi+ puts mass sigmoid(beta (1 - tau) + k) against sigmoid(beta (0 - tau) + k) on the two modes, so the
    policy critic's Q(s0, .) = gamma * E_{pi+}[r] (0.580 here), while the IQL critic's Q(s0, .) = gamma * V(s1) =
    gamma * tau (0.81). Q(s0) is read from the target heads (a Polyak average of the last few hundred updates: the TD
    target of s0 is one Bernoulli draw of pi+ per row)."""
    gamma, tau, beta, k = 0.9, 0.9, 1.0, 0.0
    n0, n1 = 512, 64
    mode = np.where(np.arange(n1) % 2 == 0, 0.5, -0.5).astype(np.float32)[:, None]
    batch = {"observations": np.concatenate([np.zeros((n0, 1)), np.ones((n1, 1))]).astype(np.float32),
             "actions": np.concatenate([np.zeros((n0, 1), np.float32), mode]),
             "rewards": np.concatenate([np.zeros(n0), (mode[:, 0] > 0)]).astype(np.float32),
             "masks": np.concatenate([np.ones(n0), np.zeros(n1)]).astype(np.float32),
             "next_observations": np.ones((n0 + n1, 1), np.float32)}
    batch = jax.tree_util.tree_map(jnp.asarray, batch)
    hi, lo = 1 / (1 + np.exp(-(beta * (1 - tau) + k))), 1 / (1 + np.exp(-(beta * (0 - tau) + k)))
    share = hi / (hi + lo)  # pi+'s mass on the rewarded mode: 0.645
    s0, a0, s1 = jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.ones((4000, 1))
    q0 = {}
    for form, updates in (("policy", 1500), ("iql", 2000)):  # both converged there (errors 0.01-0.03)
        config = DIPOLEConfig(critic=form, actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64), discount=gamma,
                              expectile=tau, beta=beta, k=k, lr=1e-3, flow_steps=10)
        agent = DIPOLEAgent.create(0, np.zeros(1), np.zeros(1), config)
        agent, _ = jax.lax.scan(lambda a, _: (a.update(batch)[0], None), agent, None, length=updates)
        q0[form] = float(jnp.mean(agent.q_net.apply(agent.target_q, s0, a0)))
        if form == "policy":
            a1 = agent.next_actions(s1, jax.random.PRNGKey(0))
            evaluated = gamma * float(jnp.mean(agent.critic_values(s1, a1)))  # gamma E_{learned pi+}[Q(s1, a')]
            assert abs(float(jnp.mean(a1 > 0)) - share) < 0.06  # the learned pi+ is the closed-form reweighting
            assert abs(q0["policy"] - evaluated) < 0.05, (q0, evaluated)  # Q evaluates the learned pi+
    assert abs(q0["policy"] - gamma * share) < 0.07, q0
    assert abs(q0["iql"] - gamma * tau) < 0.03, q0
    assert q0["policy"] < q0["iql"] - 0.1


FINGERPRINT = os.path.join(os.path.dirname(__file__), "dipole_iql_fingerprint.json")


def _fingerprint(cfg):
    def batch(seed):
        r = np.random.default_rng(seed)
        return {"observations": r.normal(size=(64, 6)).astype(np.float32),
                "actions": r.uniform(-1, 1, (64, 3)).astype(np.float32),
                "rewards": r.normal(size=(64,)).astype(np.float32),
                "masks": (r.uniform(size=(64,)) > 0.1).astype(np.float32),
                "next_observations": r.normal(size=(64, 6)).astype(np.float32)}

    b = batch(0)
    agent = DIPOLEAgent.create(3, b["observations"][:1], b["actions"][:1], DIPOLEConfig(**cfg))
    for i in range(25):
        agent, info = agent.update(batch(i))
    leaves = jax.tree_util.tree_leaves(agent.params)
    actions = agent.sample_actions(b["observations"][:8], jax.random.PRNGKey(7))
    return {"param_sums": [float(np.sum(np.asarray(x, np.float64))) for x in leaves],
            "param_abs": [float(np.sum(np.abs(np.asarray(x, np.float64)))) for x in leaves],
            "actions": np.asarray(actions, np.float64).round(7).tolist(),
            "q_loss": float(info["q_loss"]), "v_loss": float(info["v_loss"])}


@pytest.mark.parametrize("variant", ["two_networks", "shared_tilt", "running_std"])
def test_iql_form_is_unchanged(variant):
    """critic='iql' with the earlier defaults reproduces parameters, losses and actions recorded (tests/
    dipole_iql_fingerprint.json) by the code before the policy critic was added: 25 updates, three configurations.
    The file was written at commit 3249a08 by this same function, called with the same fields less `critic` (which
    that code did not have)."""
    base = dict(critic="iql", beta=10.0, discount=0.99, omega=1.0, num_candidates=32, selection="argmax",
                actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32), batch_size=64)
    extra = {"two_networks": {}, "shared_tilt": dict(shared_actor=True, omega=0.0, selection="tilt"),
             "running_std": dict(adv_norm="running_std", beta=1.0, expectile=0.7, num_candidates=1)}[variant]
    want = json.load(open(FINGERPRINT))[variant]
    got = _fingerprint({**base, **extra})
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_form_defaults_and_task_rules_follow_the_critic_form():
    cube = "cube-single-play-singletask-task1-v0"
    policy = build_config("dipole", cube, "small")
    assert (policy.critic, policy.beta, policy.k, policy.discount, policy.omega, policy.num_candidates,
            policy.selection, policy.shared_actor) == ("policy", 1.0, 0.0, 0.995, 2.0, 32, "tilt", False)  # round 3
    assert (build_config("dipole", None).omega, build_config("dipole", None).selection) == (0.0, "argmax")  # authors'
    assert build_config("dipole", None).actor_hidden_dims == (512, 512, 512)  # the authors' sizes at `paper`
    iql = build_config("dipole", cube, "small", {"critic": "iql"})
    assert (iql.beta, iql.discount, iql.omega, iql.selection, iql.shared_actor) == (10.0, 0.99, 0.0, "tilt", True)
    assert build_config("dipole", None, "paper", {"critic": "iql"}).actor_hidden_dims == (512,) * 4
    assert build_config("dipole", None, "paper", {"critic": "iql"}).omega == 1.0
    hw = build_config("dipole", "highway-fast-v0", "small", {"critic": "iql"})
    assert (hw.adv_norm, hw.beta, hw.expectile) == ("running_std", 1.0, 0.7)
    assert build_config("dipole", "highway-fast-v0", "small").adv_norm == "none"
    # the iql form's defaults are the config's defaults before 0.3.0, with no task
    old = build_config("dipole", None, "paper", {"critic": "iql"})
    assert (old.beta, old.k, old.discount, old.omega, old.num_candidates, old.selection, old.shared_actor,
            old.value_hidden_dims) == (10.0, 0.0, 0.99, 1.0, 32, "argmax", False, (512,) * 4)
    assert make_config("dipole", {"critic": "iql"}).to_dict() == old.to_dict()
    antmaze = "antmaze-large-navigate-singletask-task1-v0"  # FQL's 0.99 there; the authors' form keeps its 0.995
    discounts = (build_config("dipole", antmaze).discount,
                 build_config("dipole", antmaze, "paper", {"critic": "iql"}).discount,
                 build_config("fql", antmaze).discount)
    assert discounts == (0.995, 0.99, 0.99)
    # an explicit value still wins over the form's default
    assert build_config("dipole", cube, "small", {"critic": "iql", "beta": 3.0}).beta == 3.0
    assert make("dipole", np.zeros(3), np.zeros(2), preset="tiny", critic="iql").config.beta == 10.0


def test_checkpoints_from_before_the_policy_form_load_as_the_iql_form():
    saved = {k: v for k, v in DIPOLEConfig(critic="iql").to_dict().items() if k not in ("critic", "k", "train_omega",
                                                                                            "train_candidates")}
    assert DIPOLEConfig.from_dict(saved).critic == "iql"
    assert DIPOLEConfig.from_dict({**saved, "critic": "policy"}).critic == "policy"


@pytest.mark.parametrize("field,value,words", [("critic", "td3", "config.critic must be one of policy, iql"),
                                               ("train_candidates", 0, "config.train_candidates must be >= 1"),
                                               ("train_omega", -1.0, "config.train_omega must be a finite number")])
def test_bad_policy_critic_settings_are_refused(field, value, words):
    with pytest.raises(UsageError, match=words):
        DIPOLEConfig(**{field: value})


def test_critic_values_reads_every_head_and_checks_shapes():
    for name in ("dipole", "iql", "ifql", "cfgrl", "fql"):
        agent = make(name, np.zeros(3), np.zeros(2), preset="tiny")
        agent = agent.replace(target_q=jax.tree_util.tree_map(lambda p: 2 * p, agent.params["q"]))  # online heads read
        obs, act = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
        qs = agent.critic_values(obs, act)
        assert qs.shape == (2, 4)
        np.testing.assert_allclose(qs, agent.q_net.apply(agent.params["q"], obs, act), rtol=1e-6)
        assert agent.critic_values(obs[0], act[0]).shape == (2,)
        with pytest.raises(UsageError, match=r"critic_values takes obs \(B, 3\) and actions \(B, 2\)"):
            agent.critic_values(np.ones((4, 5)), act)
    with pytest.raises(UsageError, match="has no Q ensemble"):
        make("bc", np.zeros(3), np.zeros(2), preset="tiny").critic_values(np.ones((1, 3)), np.zeros((1, 2)))



def test_a_conditional_rule_key_with_a_typo_is_refused(monkeypatch):
    from dipole.agents import presets

    monkeypatch.setattr(presets, "TASK_RULES", [("*", {"dipole[critc=iql].omega": 0.5})])
    with pytest.raises(UsageError, match=r"write AGENT\[FIELD=VALUE\]\.KEY with a field of that agent"):
        build_config("dipole", "pointmaze-medium-navigate-singletask-task1-v0")


def test_cost_scripts_run_both_forms_and_dipole_terms(monkeypatch, capsys):
    """The README's cost commands run as written (their main(), in this process): throughput on dipole-terms (its
    batch needs term rewards) and both DIPOLE forms; populations of both forms. Rates are printed, never asserted."""
    import sys

    from conftest import benchmark_script

    def run(script, *args):
        module = benchmark_script(script)
        monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}.py", *args])
        module.main()
        return capsys.readouterr().out

    rows = json.loads(run("throughput", "--agents", "dipole-terms", "--sizes", "tiny", "--seconds", "0.05"))["agents"]
    assert [r["agent"] for r in rows] == ["dipole-terms"]
    assert all(r["updates_per_s"] > 0 for r in rows)
    out = run("population", "--sizes", "tiny", "--agents", "dipole,dipole[critic=iql]", "--tasks", "1", "--seeds",
              "1", "--rows", "600", "--chunk", "2", "--seconds", "0.05", "--skip-single")
    lines = [json.loads(x) for x in out.splitlines()]
    assert [(r["agent"], r["config"]["critic"]) for r in lines] == [("dipole", "policy"), ("dipole[critic=iql]", "iql")]
