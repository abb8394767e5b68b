"""DMC exploratory data: relabelled rewards equal the environment's, determinism, and training/eval end to end."""

import json
import os

import numpy as np
import pytest

from dipole.cli import main
from dipole.data.dmc import load_dmc, relabel
from dipole.datagen.dmc import generate_dmc
from dipole.envs.dmc import DOMAINS, DMCEnv


@pytest.mark.parametrize("domain,task", [(d, t) for d, ts in DOMAINS.items() for t in ts])
def test_relabelled_reward_equals_environment_reward(domain, task):
    env = DMCEnv(domain, task, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    states, rewards = [], []
    for _ in range(30):
        _, r, _, _, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        states.append(env.physics.get_state().copy())
        rewards.append(r)
    fresh = DMCEnv(domain, task, seed=1)
    fresh.reset()
    assert np.allclose(relabel(fresh, np.asarray(states)), rewards, atol=1e-6)


def test_generation_is_deterministic_and_loads(tmp_path):
    a = generate_dmc("walker", steps=600, explorers=3, workers=1, seed=0, out_dir=str(tmp_path / "a"),
                     progress=False)
    b = generate_dmc("walker", steps=600, explorers=3, workers=2, seed=0, out_dir=str(tmp_path / "b"),
                     progress=False)
    ra, rb = np.load(a["path"]), np.load(b["path"])
    for k in ("observations", "actions", "next_observations", "physics"):
        assert np.array_equal(ra[k], rb[k]), k
    assert ra["actions"].shape == (600, 6) and ra["physics"].shape[0] == 600
    meta = json.loads(str(ra["meta"]))
    assert meta["cells_discovered"] > 10 and meta["steps"] == 600
    env, ds = load_dmc("dmc-walker-stand", a["path"])
    assert len(ds) == 600 and ds.obs_dim == 24 and np.all(ds["masks"] == 1)
    assert 0 <= ds["rewards"].min() and ds["rewards"].max() <= 1


def test_train_and_eval_on_dmc(tmp_path):
    info = generate_dmc("cheetah", steps=400, explorers=2, workers=1, out_dir=str(tmp_path), progress=False)
    run = str(tmp_path / "run")
    main(["train", "--env", "dmc-cheetah-run_backward", "--dataset", info["path"], "--preset", "tiny", "--steps",
          "100", "--log-every", "50", "--eval-every", "0", "--eval-episodes", "0", "--save-every", "50", "--run-dir", run,
          "--config.flow_steps=2"])
    main(["eval", "--checkpoint", run, "--omega", "1", "--num-candidates", "1", "--episodes", "1"])
    rows = json.load(open(os.path.join(run, "eval-step00000100-1.json")))
    assert rows[0]["success"] is None and rows[0]["length"] == 1000  # DMC has no success signal


def test_dmc_errors():
    with pytest.raises(ValueError, match="unknown DMC domain 'hopper'"):
        generate_dmc("hopper", steps=10)
    with pytest.raises(ValueError, match="unknown DMC task walker-fly"):
        DMCEnv("walker", "fly")
    with pytest.raises(FileNotFoundError, match="dipole data dmc walker"):
        load_dmc("dmc-walker-walk", "/nonexistent/walker-explore.npz")
