"""One logger for the offline and online loops: CSV always, TensorBoard and Weights & Biases (offline) when asked."""

import glob
import os

import pytest
from conftest import TINY

from dipole import DIPOLEConfig
from dipole.data.ogbench import load_ogbench
from dipole.runners.logging import LogSettings, RunLogger, read_csv
from dipole.runners.loop import train
from dipole.runners.offline import TrainSettings

TASK = "pointmaze-medium-navigate-singletask-task1-v0"


def test_csv_streams_and_resume_cut(tmp_path):
    log = RunLogger(str(tmp_path), ("metrics", "eval"))
    for step in (10, 20, 30):
        log.log("metrics", {"step": step, "loss": step / 10})
    assert log.files() == ["metrics.csv"]  # a stream with no row has no file
    log.close()
    RunLogger(str(tmp_path), ("metrics", "eval"), resume_step=20).close()
    assert [r["step"] for r in read_csv(str(tmp_path / "metrics.csv"))] == [10, 20]
    with pytest.raises(ValueError, match="wandb_mode must be 'offline', 'online' or 'disabled'"):
        LogSettings(wandb_mode="cloud")


def test_tensorboard_and_wandb_offline_receive_the_same_rows(tmp_path, pointmaze_files):
    pytest.importorskip("tensorboardX", reason="TensorBoard logging needs `pip install -e '.[tensorboard]'`")
    pytest.importorskip("wandb", reason="W&B logging needs `pip install -e '.[wandb]'`")
    os.environ.setdefault("WANDB_SILENT", "true")
    _, dataset, val = load_ogbench(TASK, dataset_path=pointmaze_files["train_path"])
    run = str(tmp_path / "run")
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY),
          TrainSettings(steps=200, log_every=100, eval_every=0, eval_episodes=1, save_every=100, progress=False),
          val_dataset=val, logging=LogSettings(tensorboard=True, wandb=True, wandb_mode="offline"),
          log=lambda *_: 0)
    events = glob.glob(os.path.join(run, "tb", "events.out.tfevents.*"))
    assert len(events) == 1
    blob = open(events[0], "rb").read()
    for tag in (b"metrics/q_loss", b"metrics/val/q_loss", b"eval/return"):
        assert tag in blob
    runs = glob.glob(os.path.join(run, "wandb", "offline-run-*", "run-*.wandb"))
    assert len(runs) == 1 and os.path.getsize(runs[0]) > 0
    assert [r["step"] for r in read_csv(os.path.join(run, "metrics.csv"))] == [100, 200]
