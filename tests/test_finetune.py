"""Offline-to-online fine-tuning: buffer accounting, exact resume after a kill, the offline data kept, CLI."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import TINY

from dipole.agents import get_agent
from dipole.data.ogbench import load_ogbench
from dipole.runners.logging import read_csv
from dipole.runners.loop import train
from dipole.runners.offline import TrainSettings
from dipole.runners.online import FinetuneSettings, finetune
from dipole.storage import CheckpointError, read_checkpoint

TASK = "pointmaze-medium-navigate-singletask-task1-v0"


@pytest.fixture(scope="module")
def offline(pointmaze_files, tmp_path_factory):
    _, dataset, _ = load_ogbench(TASK, dataset_path=pointmaze_files["train_path"])
    _, config_cls = get_agent("dipole")
    config = config_cls(**TINY)
    run = str(tmp_path_factory.mktemp("offline"))
    agent = train(run, TASK, dataset, "dipole", config,
                  TrainSettings(steps=100, log_every=50, eval_every=0, eval_episodes=0, save_every=100, progress=False), log=lambda *_: 0)
    return dataset, agent, run


def settings(**kw):
    base = dict(online_steps=300, episode_length=120, eval_every=150, eval_episodes=2, save_every=100, log_every=50,
                progress=False)
    return FinetuneSettings(**{**base, **kw})


class Killed(Exception):
    pass


def test_finetune_resumes_exactly_after_a_kill(offline, tmp_path, monkeypatch):
    dataset, agent, _ = offline
    full_dir, killed_dir = str(tmp_path / "full"), str(tmp_path / "killed")
    full_agent, full_buffer = finetune(full_dir, TASK, dataset, agent, settings(), log=lambda *_: 0)

    # the buffer grew by exactly the number of env steps and the offline rows are untouched
    assert full_buffer.count == 300 and len(full_buffer) == len(dataset) + 300
    for k in ("observations", "actions", "rewards", "masks", "next_observations"):
        np.testing.assert_array_equal(full_buffer.data[k][: len(dataset)], dataset[k])
    assert int(full_agent.step) == int(agent.step) + 300  # one update per env step
    episodes = read_csv(os.path.join(full_dir, "episodes.csv"))
    assert [e["step"] for e in episodes] == [120, 240]  # truncated at episode_length
    evals = read_csv(os.path.join(full_dir, "eval.csv"))
    assert [e["step"] for e in evals] == [0, 150, 300]  # step 0 is the offline agent's score

    # kill the run at env step 250 (last checkpoint: 200, in the middle of the third episode)
    import dipole.runners.online as ft

    real_make_env = ft.make_env
    made = []

    def dying_env(name):  # the first env made is the training env; evaluation envs are left alone
        env = real_make_env(name)
        made.append(env)
        if len(made) > 1:
            return env
        step = env.step
        calls = {"n": 0}

        def counted(action):
            calls["n"] += 1
            if calls["n"] > 250:
                raise Killed()
            return step(action)

        env.step = counted
        return env

    monkeypatch.setattr(ft, "make_env", dying_env)
    with pytest.raises(Killed):
        finetune(killed_dir, TASK, dataset, agent, settings(), log=lambda *_: 0)
    monkeypatch.setattr(ft, "make_env", real_make_env)
    assert sorted(os.listdir(os.path.join(killed_dir, "checkpoints"))) == ["ckpt-00000100.dpl", "ckpt-00000200.dpl"]
    header, _ = read_checkpoint(os.path.join(killed_dir, "checkpoints", "ckpt-00000200.dpl"))
    assert header["finetune"]["env_step"] == 200 and header["finetune"]["online_count"] == 200

    resumed_agent, resumed_buffer = finetune(killed_dir, TASK, dataset, agent, settings(), resume=True,
                                             log=lambda *_: 0)
    assert resumed_buffer.count == 300
    for k in full_buffer.data:
        np.testing.assert_array_equal(resumed_buffer.data[k], full_buffer.data[k])
    for a, b in zip(jax.tree_util.tree_leaves(resumed_agent), jax.tree_util.tree_leaves(full_agent)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in ("episodes.csv", "eval.csv"):
        assert read_csv(os.path.join(killed_dir, name)) == read_csv(os.path.join(full_dir, name))
    assert [r["step"] for r in read_csv(os.path.join(killed_dir, "metrics.csv"))] == [50 * i for i in range(1, 7)]


def test_ring_buffer_keeps_offline_data_and_checkpoint_is_an_agent(offline, tmp_path):
    from dipole.agents import load_checkpoint as load_agent

    dataset, agent, _ = offline
    _, buf = finetune(str(tmp_path), TASK, dataset, agent,
                      settings(online_steps=100, buffer_capacity=40, eval_every=0, eval_episodes=0, updates_per_step=2),
                      log=lambda *_: 0)
    assert buf.count == 100 and buf.online_size == 40 and len(buf) == len(dataset) + 40
    np.testing.assert_array_equal(buf.data["observations"][: len(dataset)], dataset["observations"])
    loaded, header = load_agent(str(tmp_path))
    assert int(loaded.step) == int(agent.step) + 200  # two updates per env step
    assert header["finetune"]["buffer_capacity"] == 40


def test_finetune_rejects_bad_settings(offline, tmp_path):
    dataset, agent, run = offline
    with pytest.raises(ValueError, match="updates_per_step"):
        FinetuneSettings(updates_per_step=0)
    with pytest.raises(ValueError, match="save_every"):
        FinetuneSettings(save_every=150, log_every=100)
    with pytest.raises(ValueError, match="omega must be >= 0"):
        finetune(str(tmp_path / "a"), TASK, dataset, agent, settings(act_omega=-1.0), log=lambda *_: 0)
    bc_cls, bc_cfg = get_agent("bc")
    bc = bc_cls.create(0, dataset["observations"][:1], dataset["actions"][:1], bc_cfg(**TINY))
    with pytest.raises(ValueError, match="no greediness knob"):
        finetune(str(tmp_path / "b"), TASK, dataset, bc, settings(act_omega=1.0), log=lambda *_: 0)
    # resuming in a folder of offline checkpoints is refused rather than misread
    with pytest.raises(CheckpointError, match="not a fine-tuning checkpoint"):
        finetune(run, TASK, dataset, agent, settings(), resume=True, log=lambda *_: 0)


@pytest.mark.parametrize("agent_name", ["fql", "iql"])
def test_baselines_finetune(offline, tmp_path, agent_name):
    dataset, _, _ = offline
    cls, cfg = get_agent(agent_name)
    agent = cls.create(0, dataset["observations"][:1], dataset["actions"][:1], cfg(**{
        k: v for k, v in TINY.items() if k in cfg.__dataclass_fields__}))
    out, buf = finetune(str(tmp_path), TASK, dataset, agent, settings(online_steps=60, eval_every=0, eval_episodes=0, save_every=50,
                                                                       log_every=10), log=lambda *_: 0)
    assert buf.count == 60 and int(out.step) == 60


def test_cli_finetune(offline, tmp_path, pointmaze_files):
    from dipole.cli import main

    _, _, run = offline
    out = str(tmp_path / "ft")
    main(["finetune", "--checkpoint", run, "--online-steps", "100", "--episode-length", "60", "--eval-every", "100",
          "--eval-episodes", "1", "--save-every", "50", "--log-every", "50", "--run-dir", out])
    assert os.path.exists(os.path.join(out, "finetune_curve.png"))
    evals = read_csv(os.path.join(out, "eval.csv"))
    assert [e["step"] for e in evals] == [0, 100]
    # `--config.FIELD` changes training settings of the loaded agent; a field that reshapes the networks is refused
    assert json.load(open(os.path.join(out, "config.json")))["config"]["lr"] == 3e-4
    with pytest.raises(SystemExit, match=r"error: --config.actor_hidden_dims changes the networks' shapes"):
        main(["finetune", "--checkpoint", run, "--online-steps", "10", "--run-dir", str(tmp_path / "x"),
              "--config.actor-hidden-dims", "8"])
    lr_run = str(tmp_path / "lr")
    main(["finetune", "--checkpoint", run, "--online-steps", "20", "--episode-length", "10", "--eval-episodes", "0",
          "--save-every", "10", "--log-every", "10", "--run-dir", lr_run, "--config.lr", "1e-4"])
    assert json.load(open(os.path.join(lr_run, "config.json")))["config"]["lr"] == 1e-4
    # --resume on a finished run does nothing more and keeps its logs
    main(["finetune", "--checkpoint", run, "--online-steps", "100", "--episode-length", "60", "--eval-every", "100",
          "--eval-episodes", "1", "--save-every", "50", "--log-every", "50", "--run-dir", out, "--resume"])
    assert [e["step"] for e in read_csv(os.path.join(out, "eval.csv"))] == [0, 100]
    # a fine-tune's folder is not resumed as an offline run
    with pytest.raises(SystemExit, match=r"error: --resume: .* is a fine-tune's checkpoint; resume it with `dipole "
                                         r"finetune --resume`"):
        main(["train", "--env", "pointmaze-medium-navigate-singletask-task1-v0", "--dataset",
              pointmaze_files["train_path"], "--run-dir", out, "--resume", "--steps", "100000"])
