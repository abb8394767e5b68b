"""Bad input gets a clear error naming the field and the fix."""

import os

import numpy as np
import pytest
from conftest import random_transitions

from dipole import DIPOLEAgent, DIPOLEConfig
from dipole.agents import make_config
from dipole.cli import main
from dipole.data.dataset import Dataset, DatasetError
from dipole.data.ogbench import load_ogbench


def test_missing_key():
    d = random_transitions()
    del d["rewards"]
    with pytest.raises(DatasetError, match=r"missing key\(s\) \['rewards'\]"):
        Dataset(d)


def test_mismatched_lengths():
    d = random_transitions()
    d["actions"] = d["actions"][:-3]
    with pytest.raises(DatasetError, match="'actions' has 509 rows but 'observations' has 512"):
        Dataset(d)


def test_nan_and_inf():
    d = random_transitions()
    d["observations"][17, 1] = np.nan
    with pytest.raises(DatasetError, match="'observations' has 1 non-finite.*first at row 17"):
        Dataset(d)
    d = random_transitions()
    d["rewards"][3] = np.inf
    with pytest.raises(DatasetError, match="'rewards'.*non-finite"):
        Dataset(d)


def test_actions_out_of_bounds_refused_unless_clipping_asked():
    d = random_transitions()
    d["actions"][5] = [1.5, -2.0]
    with pytest.raises(DatasetError, match=r"'actions' has 1 rows outside \[-1, 1\].*clip_actions=True"):
        Dataset(d)
    ds = Dataset(d, clip_actions=True)
    assert ds.num_clipped_actions == 1 and np.abs(ds["actions"]).max() == 1.0


def test_wrong_observation_shape():
    d = random_transitions(obs_dim=3)
    with pytest.raises(DatasetError, match=r"rows have shape \(3,\) but the environment observes \(2,\)"):
        Dataset(d, obs_shape=(2,))
    d["next_observations"] = d["next_observations"][:, :2]
    with pytest.raises(DatasetError, match="'next_observations' has shape"):
        Dataset(d)


def test_masks_must_be_binary():
    d = random_transitions()
    d["masks"][0] = 0.5
    with pytest.raises(DatasetError, match="'masks' must be 0 or 1"):
        Dataset(d)


def test_dataset_against_env_in_loader(tmp_path, pointmaze_files):
    # a file whose observations have the wrong width for pointmaze (2-D)
    raw = dict(np.load(pointmaze_files["train_path"]))
    raw["observations"] = np.concatenate([raw["observations"], raw["observations"][:, :1]], axis=1)
    path = tmp_path / "pointmaze-medium-navigate-v0.npz"
    np.savez(path, **raw)
    np.savez(tmp_path / "pointmaze-medium-navigate-v0-val.npz", **raw)
    with pytest.raises(DatasetError, match=r"field 'observations' has 3 numbers per row but environment .* observes 2"):
        load_ogbench("pointmaze-medium-navigate-singletask-task1-v0", dataset_path=str(path))


def test_missing_files_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="dipole data ogbench pointmaze-medium-navigate-v0"):
        load_ogbench("pointmaze-medium-navigate-singletask-task1-v0", dataset_dir=str(tmp_path))


def test_bad_names_and_config_values():
    with pytest.raises(ValueError, match="not an OGBench single-task name"):
        load_ogbench("pointmaze-medium-navigate-v0")
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['betta'\] for agent 'dipole'; valid fields: \['actor_hidden_dims'"):
        make_config("dipole", {"betta": "3"})
    with pytest.raises(ValueError, match="config.beta: cannot read 'high' as float"):
        make_config("dipole", {"beta": "high"})
    with pytest.raises(ValueError, match="adv_norm must be one of"):
        DIPOLEAgent.create(0, np.zeros(2), np.zeros(2), DIPOLEConfig(adv_norm="zscore"))
    with pytest.raises(ValueError, match="config.q_agg must be one of min, lcb, got 'max'"):
        make_config("dipole", {"q_agg": "max"})
    with pytest.raises(ValueError, match="config.q_pessimism must be a finite number >= 0, got -1.0"):
        make_config("dipole", {"q_pessimism": "-1"})
    with pytest.raises(ValueError, match="unknown agent"):
        make_config("ppo")


def test_sampling_arguments_checked():
    agent = DIPOLEAgent.create(0, np.zeros(2), np.zeros(2), DIPOLEConfig(actor_hidden_dims=(8,), value_hidden_dims=(8,)))
    import jax

    with pytest.raises(ValueError, match="omega must be >= 0"):
        agent.sample_actions(np.zeros(2), jax.random.PRNGKey(0), omega=-1)
    with pytest.raises(ValueError, match="num_candidates must be >= 1"):
        agent.sample_actions(np.zeros(2), jax.random.PRNGKey(0), num_candidates=0)


def test_cli_reports_errors_without_traceback(tmp_path):
    with pytest.raises(SystemExit, match="error: .*dipole data ogbench"):
        main(["train", "--env", "pointmaze-medium-navigate-singletask-task1-v0", "--run-dir", str(tmp_path),
              "--dataset", str(tmp_path / "missing.npz")])
    with pytest.raises(SystemExit, match="error: .*neither a checkpoint file nor a run folder"):
        main(["eval", "--checkpoint", str(tmp_path / "nope")])


def test_a_diverging_run_stops_with_one_error_line_and_saves_no_non_finite_state(tmp_path, pointmaze_files, capsys):
    run = str(tmp_path / "run")
    with pytest.raises(SystemExit) as e:
        main(["train", "--env", "pointmaze-medium-navigate-singletask-task1-v0", "--dataset",
              pointmaze_files["train_path"], "--run-dir", run, "--steps", "40", "--log-every", "20", "--save-every",
              "20", "--eval-every", "0", "--preset", "tiny", "--config.lr", "1e30", "--no-progress"])
    message = str(e.value.code)  # the CLI exits with its one `error:` line
    assert message.startswith("error: non-finite training metrics") and "lower config.lr" in message
    assert "\n" not in message
    assert "at step 20;" in message  # the first check, at the first logged step
    assert os.listdir(os.path.join(run, "checkpoints")) == []  # the non-finite step-20 state is never saved


def test_a_dmc_name_without_its_task_is_refused_with_the_names_that_exist():
    from dipole.envs.dmc import make_dmc_env
    from dipole.errors import UsageError

    with pytest.raises(UsageError, match=r"unknown DMC task 'dmc-walker': write dmc-DOMAIN-TASK, one of \['dmc-walker-st"):
        make_dmc_env("dmc-walker")
