"""The user API of the README: make / update / sample_actions / save / load, as written there."""

import os
import re

import jax
import numpy as np
import pytest
from conftest import random_transitions

import dipole

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_readme_api_snippet_runs_as_written(tmp_path, monkeypatch):
    text = open(README).read()
    section = text[text.index("## Python API"):text.index("## Command line")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)  # noqa: S102  (the README's own snippet)
    agent = namespace["agent"]
    assert int(agent.step) == 200 and agent.config.beta == 3.0 and agent.config.actor_hidden_dims == (128,) * 3
    assert os.path.exists(tmp_path / "runs" / "api" / "agent.dpl")
    assert np.all(np.abs(np.asarray(namespace["greedy"])) <= 1.0)


def test_make_takes_any_config_field_and_refuses_unknown_ones():
    d = random_transitions()
    agent = dipole.make("iql", d["observations"][:1], d["actions"][:1], seed=1, preset="tiny", alpha=3.0)
    assert agent.config.alpha == 3.0 and agent.config.actor_hidden_dims == (32, 32) and agent.obs_dim == 3
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['alhpa'\] for agent 'iql'; valid fields: "
                                         r"\[.*'alpha'.*\]"):
        dipole.make("iql", d["observations"][:1], d["actions"][:1], alhpa=3.0)
    with pytest.raises(ValueError, match=r"unknown agent 'ppo'; available: \['bc', 'cfgrl', 'dipole'"):
        dipole.make("ppo", d["observations"][:1], d["actions"][:1])
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; choose one of \['paper', 'small', 'tiny'\]"):
        dipole.make("bc", d["observations"][:1], d["actions"][:1], preset="huge")


def test_make_applies_the_task_rules_fixed_in_advance():
    d = random_transitions()
    agent = dipole.make("fql", d["observations"][:1], d["actions"][:1], preset="tiny",
                        task="cube-double-play-singletask-task2-v0")
    assert agent.config.alpha == 300.0  # FQL's paper value for cube
    assert dipole.make("fql", d["observations"][:1], d["actions"][:1], preset="tiny").config.alpha == 10.0


@pytest.mark.parametrize("name", sorted(dipole.AGENTS))
def test_saved_agent_loads_with_the_same_state_and_actions(tmp_path, name):
    d = random_transitions()
    agent = dipole.make(name, d["observations"][:1], d["actions"][:1], seed=4, preset="tiny", flow_steps=3)
    if name == "dipole-terms":  # it learns from a reward per term (speed, safety, lane by default)
        d["term_rewards"] = np.random.default_rng(1).normal(size=(len(d["rewards"]), 3)).astype(np.float32)
    agent, _ = agent.update({k: v[:64] for k, v in d.items()})
    path = agent.save(str(tmp_path / "agent.dpl"), note="kept in the header")
    loaded, header = dipole.agents.load_checkpoint(path)
    assert header["note"] == "kept in the header" and header["agent"] == name and header["step"] == 1
    for x, y in zip(jax.tree_util.tree_leaves(agent), jax.tree_util.tree_leaves(loaded)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    obs = d["observations"][:7]
    a = agent.sample_actions(obs, jax.random.PRNGKey(2))
    assert np.array_equal(np.asarray(a), np.asarray(dipole.load(path).sample_actions(obs, jax.random.PRNGKey(2))))


def test_config_of_an_older_checkpoint_with_the_agent_name_among_its_fields():
    cfg = dipole.DIPOLEConfig.from_dict({"agent": "dipole", "beta": 3.0})
    assert cfg.beta == 3.0 and cfg.agent == "dipole" and "agent" not in cfg.to_dict()


@pytest.mark.parametrize("seed", [7, 2 ** 31 - 1, 2 ** 31])
def test_compiled_create_gives_every_agent_the_values_of_the_op_by_op_create(seed):
    """Runs and populations create their agents as one compiled program; every array is the one the plain create
    makes, bit for bit, for every agent and for seeds at and past the int32 range (those are made on the host)."""
    from dipole.agents import AGENTS, build_config, create_agent

    obs, act = np.zeros((1, 5), np.float32), np.zeros((1, 3), np.float32)
    # past the int32 range both calls run the plain create: one agent shows that branch
    agents = AGENTS.items() if seed < 2 ** 31 else [("dipole", AGENTS["dipole"])]
    for name, (cls, _) in agents:
        config = build_config(name, None, "tiny", {})
        plain, compiled = cls.create(seed, obs, act, config), create_agent(cls, seed, obs, act, config)
        a, b = jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(compiled)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y)), name
