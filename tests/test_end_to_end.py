"""End to end on a tiny generated OGBench-format dataset: training, save/load, resume, CLI."""

import os

import jax
import numpy as np
import pytest
from conftest import TINY

from dipole import DIPOLEConfig
from dipole.agents import load_checkpoint as load_agent
from dipole.cli import main
from dipole.data.ogbench import load_ogbench
from dipole.runners.logging import read_csv
from dipole.runners.loop import train
from dipole.runners.offline import TrainSettings
from dipole.storage import CheckpointError, list_checkpoints, resolve_checkpoint

TASK = "pointmaze-medium-navigate-singletask-task1-v0"


@pytest.fixture(scope="module")
def dataset(pointmaze_files):
    env, train_ds, val_ds = load_ogbench(TASK, dataset_path=pointmaze_files["train_path"])
    env.close()
    return train_ds


def test_generated_files_load_through_ogbench(pointmaze_files, dataset):
    # 4 episodes of 1001 steps -> 4 * 1000 transitions (OGBench drops each episode's last step)
    assert len(dataset) == 4 * 1000
    assert dataset.obs_dim == 2 and dataset.action_dim == 2
    assert set(np.unique(dataset["rewards"])) <= {-1.0, 0.0}
    assert np.array_equal(dataset["masks"], (dataset["rewards"] != 0).astype(np.float32))
    raw = np.load(pointmaze_files["train_path"])
    assert raw["terminals"].sum() == 4 and raw["terminals"][1000] == 1 and raw["qpos"].shape == (4004, 2)


def _settings(steps, **kw):
    return TrainSettings(steps=steps, log_every=100, eval_every=0, eval_episodes=0, save_every=100,
                         progress=False, **kw)


def test_train_few_hundred_updates_without_nan(tmp_path, dataset):
    agent = train(str(tmp_path), TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(300), log=lambda *_: None)
    rows = read_csv(str(tmp_path / "metrics.csv"))
    assert [r["step"] for r in rows] == [100, 200, 300]
    assert all(np.isfinite(v) for r in rows for k, v in r.items())
    assert int(agent.step) == 300
    leaves = jax.tree_util.tree_leaves(agent.params)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)


def test_save_load_gives_identical_actions(tmp_path, dataset):
    agent = train(str(tmp_path), TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100), log=lambda *_: None)
    loaded, header = load_agent(str(tmp_path))
    assert header["step"] == 100 and header["agent"] == "dipole"
    obs = dataset["observations"][:16]
    for k in (1, 4):
        a = agent.sample_actions(obs, jax.random.PRNGKey(5), omega=1.5, num_candidates=k)
        b = loaded.sample_actions(obs, jax.random.PRNGKey(5), omega=1.5, num_candidates=k)
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_resume_matches_uninterrupted_run(tmp_path, dataset):
    cfg = DIPOLEConfig(**TINY)
    full = train(str(tmp_path / "full"), TASK, dataset, "dipole", cfg, _settings(400), log=lambda *_: None)
    # "killed" after step 200: only the first half ran; then resume to 400 in the same folder
    train(str(tmp_path / "cut"), TASK, dataset, "dipole", cfg, _settings(200), log=lambda *_: None)
    resumed = train(str(tmp_path / "cut"), TASK, dataset, "dipole", cfg, _settings(400), resume=True,
                    log=lambda *_: None)
    for x, y in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(resumed)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    a = read_csv(str(tmp_path / "full" / "metrics.csv"))
    b = read_csv(str(tmp_path / "cut" / "metrics.csv"))
    assert [r["step"] for r in b] == [100, 200, 300, 400]
    assert all(ra[k] == rb[k] for ra, rb in zip(a, b) for k in ra if k != "time")


def test_truncated_checkpoint_is_refused_and_run_folder_falls_back(tmp_path, dataset):
    train(str(tmp_path), TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(200), log=lambda *_: None)
    newest = list_checkpoints(str(tmp_path))[-1]
    data = open(newest, "rb").read()
    open(newest, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_agent(newest)
    assert resolve_checkpoint(str(tmp_path)).endswith("ckpt-00000100.dpl")
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    open(newest, "wb").write(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        load_agent(newest)


def test_cli_train_then_eval(tmp_path, pointmaze_files, capsys):
    run = str(tmp_path / "run")
    main(["train", "--env", TASK, "--dataset", pointmaze_files["train_path"], "--preset", "tiny", "--steps", "200",
          "--log-every", "100", "--eval-every", "0", "--eval-episodes", "0", "--save-every", "100", "--run-dir", run,
          "--config.flow_steps=3", "--config.selection", "tilt"])
    assert os.path.exists(os.path.join(run, "learning_curve.png"))
    main(["eval", "--checkpoint", run, "--omega", "0", "2", "--num-candidates", "1", "3", "--episodes", "2"])
    out = capsys.readouterr().out
    # K 3 is evaluated with argmax and with the checkpoint's own rule (tilt, as it was trained)
    assert "| omega | K |" in out and out.count("| 2 | 3 | argmax |") == 1 and out.count("| 2 | 3 | tilt |") == 1
    rows = __import__("json").load(open(os.path.join(run, "eval-step00000200-1.json")))
    assert [(r["omega"], r["num_candidates"], r["selection"]) for r in rows] == [
        (0.0, 1, None), (2.0, 1, None), (0.0, 3, "argmax"), (2.0, 3, "argmax"), (0.0, 3, "tilt"), (2.0, 3, "tilt")]
    assert all(r["episodes"] == 2 for r in rows)
