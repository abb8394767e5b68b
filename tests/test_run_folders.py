"""Run folders, checkpoints and random streams a user can trust: one process per folder, refusals of a used or
mismatched folder, leftovers of killed writers, a full disk, skipped corrupt checkpoints, distinct random streams."""

import errno
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import TINY

from dipole import DIPOLEConfig
from dipole.agents import build_config, get_agent, make
from dipole.cli import main
from dipole.data.ogbench import load_ogbench
from dipole.errors import DipoleError, NoSpaceError, RunFolderError, UsageError
from dipole.runfolder import claim, release
from dipole.runners.loop import train
from dipole.runners.offline import TrainSettings
from dipole.runners.online import FinetuneSettings
from dipole.seeding import STREAMS, stream_key
from dipole.storage import list_checkpoints, prune_checkpoints, read_header, write_checkpoint

TASK = "pointmaze-medium-navigate-singletask-task1-v0"
QUIET = dict(log=lambda *_: None)

HOLDER = """
import sys, time
from dipole.runfolder import claim
claim(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def dataset(pointmaze_files):
    env, train_ds, _ = load_ogbench(TASK, dataset_path=pointmaze_files["train_path"])
    env.close()
    return train_ds


def _settings(steps, **kw):
    return TrainSettings(**{**dict(steps=steps, log_every=100, eval_every=0, eval_episodes=0, save_every=100,
                                   progress=False), **kw})


def _holder(folder):
    """A second real process that holds `folder`'s lock until killed."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, folder], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


# ------------------------------------------------------------------------------------------------ one process each
def test_a_second_process_is_refused_and_kill_9_releases_the_folder(tmp_path, pointmaze_files):
    run = str(tmp_path / "run")
    p = _holder(run)
    try:
        with pytest.raises(RunFolderError, match=rf"{run} is in use by pid {p.pid}; "):
            claim(run)
        # the command line refuses at once, before reading any data, with one error line
        with pytest.raises(SystemExit, match=rf"^error: {run} is in use by pid {p.pid}; "):
            main(["train", "--env", TASK, "--dataset", pointmaze_files["train_path"], "--run-dir", run])
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    claim(run)  # the kernel released the dead holder's lock
    release(run)


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    claim(str(tmp_path))
    claim(str(tmp_path))
    release(str(tmp_path))
    release(str(tmp_path))
    p = _holder(str(tmp_path))  # released for real: another process can take it
    p.kill()
    p.wait()


# ------------------------------------------------------------------------------------------------ used folders
def test_a_fresh_run_into_a_used_folder_is_refused_and_overwrite_removes_only_run_files(tmp_path, dataset):
    run = str(tmp_path)
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(200), **QUIET)
    open(os.path.join(run, "notes.txt"), "w").write("mine")
    with pytest.raises(RunFolderError, match=rf"{run} already holds a run \(config.json, metrics.csv, "
                                             r"checkpoints/\); pass --resume to continue it, --overwrite"):
        train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100, seed=1), **QUIET)
    said = []
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100, seed=1), overwrite=True,
          log=said.append)
    assert any(s.startswith(f"--overwrite: removed the earlier run in {run}") for s in said)
    assert [os.path.basename(c) for c in list_checkpoints(run)] == ["ckpt-00000100.dpl"]
    assert read_header(list_checkpoints(run)[0])["seed"] == 1
    assert open(os.path.join(run, "notes.txt")).read() == "mine"  # not a run file: kept


def test_rotation_deletes_only_this_runs_checkpoints(tmp_path):
    agent = make("bc", np.zeros(2), np.zeros(2), preset="tiny")
    for step, run_id in ((900, "other"), (1, "mine"), (2, "mine"), (3, "mine")):
        agent.save(os.path.join(tmp_path, "checkpoints", f"ckpt-{step:08d}.dpl"), run_id=run_id)
    prune_checkpoints(str(tmp_path), keep=2, run_id="mine")
    assert [os.path.basename(c) for c in list_checkpoints(str(tmp_path))] == [
        "ckpt-00000002.dpl", "ckpt-00000003.dpl", "ckpt-00000900.dpl"]


@pytest.mark.parametrize("change, field, old, new", [
    (dict(seed=1), "seed", "0", "1"),
    (dict(config=dict(beta=3.0)), "config.beta", "1.0", "3.0"),
    (dict(env="pointmaze-medium-navigate-singletask-task2-v0"), "env",
     f"'{TASK}'", "'pointmaze-medium-navigate-singletask-task2-v0'"),
    (dict(data=True), "dataset_fingerprint", None, None),
])
def test_resume_refuses_a_different_seed_config_env_or_dataset(tmp_path, dataset, change, field, old, new):
    from dipole.data.dataset import Dataset

    run = str(tmp_path)
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100), **QUIET)
    config = DIPOLEConfig(**TINY).replace(**change.get("config", {}))
    data = dataset
    if change.get("data"):  # same shapes and length, one reward changed
        arrays = dict(dataset.arrays)
        arrays["rewards"] = arrays["rewards"].copy()
        arrays["rewards"][7] = 0.0 if arrays["rewards"][7] else -1.0
        data = Dataset(arrays, name="changed")
    ckpt = os.path.join(run, "checkpoints", "ckpt-00000100.dpl")
    message = rf"--resume: {ckpt} was made with {field} = " + (rf"{old}, but this command asks for {new};"
                                                               if old else "")
    with pytest.raises(RunFolderError, match=message):
        train(run, change.get("env", TASK), data, "dipole", config, _settings(200, seed=change.get("seed", 0)),
              resume=True, **QUIET)


def test_finetune_resume_refuses_a_different_batch_size(tmp_path, dataset):
    from dipole.runners.online import finetune

    agent = make("dipole", dataset["observations"][:1], dataset["actions"][:1], preset="tiny", flow_steps=2)
    s = FinetuneSettings(online_steps=20, episode_length=10, eval_episodes=0, save_every=10, log_every=10,
                         progress=False)
    finetune(str(tmp_path), TASK, dataset, agent, s, **QUIET)
    with pytest.raises(RunFolderError, match=r"already holds a fine-tune"):
        finetune(str(tmp_path), TASK, dataset, agent, s, **QUIET)
    other = agent.replace(config=agent.config.replace(batch_size=32))
    with pytest.raises(RunFolderError, match=r"was made with config.batch_size = 64, but this command asks for 32"):
        finetune(str(tmp_path), TASK, dataset, other, s, resume=True, **QUIET)


def test_bench_refuses_other_overrides_in_the_same_folder(tmp_path):
    from dipole.bench.runner import _own_bench_folder
    from dipole.bench.suites import SUITES

    _own_bench_folder(str(tmp_path), SUITES["smoke"], {"beta": 3.0}, False, print)
    _own_bench_folder(str(tmp_path), SUITES["smoke"], {"beta": 3.0}, False, print)  # same: resumes
    with pytest.raises(RunFolderError, match=r"bench.json was made with overrides = \{'beta': 3.0\}, but this "
                                             r"command asks for \{'beta': 1.0\}"):
        _own_bench_folder(str(tmp_path), SUITES["smoke"], {"beta": 1.0}, False, print)
    _own_bench_folder(str(tmp_path), SUITES["smoke"], {"beta": 1.0}, True, print)
    assert json.load(open(tmp_path / "bench.json"))["overrides"] == {"beta": 1.0}


def test_bench_refuses_finished_runs_made_under_other_task_rules(tmp_path):
    """A frozen headline (a task rule) changed after a run finished: its result.json must not be reported, or
    resumed past, as if it had been made with today's config."""
    from dipole.bench.runner import _config, _own_bench_folder, _run_dir, run_bench
    from dipole.bench.suites import SUITES

    suite, out = SUITES["smoke"], str(tmp_path / "bench")
    _own_bench_folder(out, suite, {}, False, print)  # a bench folder as a finished run leaves it
    config = _config(suite, "cfgrl", suite.tasks[0], {}).to_dict()
    path = _run_dir(out, suite.tasks[0], "cfgrl", 0, "result.json")
    os.makedirs(os.path.dirname(path))
    row = {"omega": config["omega"], "num_candidates": 1, "success": 0.5, "return": 1.0}
    with open(path, "w") as f:
        json.dump({"task": suite.tasks[0], "agent": "cfgrl", "seed": 0, "headline": row, "omega_sweep": None,
                   "config": config}, f)
    summary = run_bench("smoke", ["cfgrl"], 1, out_dir=out, report_only=True, log=lambda *_: None)
    assert summary["agents"]["cfgrl"]["category"] == (50.0, 0.0)  # made with today's config: reported
    with open(path, "w") as f:
        json.dump({"task": suite.tasks[0], "agent": "cfgrl", "seed": 0, "headline": row, "omega_sweep": None,
                   "config": {**config, "omega": config["omega"] + 2.0}}, f)
    msg = (rf"1 finished run\(s\) of cfgrl in {out} were made with another config than this command gives now, .*"
           rf"\(first: {path}: omega {config['omega'] + 2.0!r} \(now {config['omega']!r}\)\); delete runs/\*/cfgrl "
           r"there to run them again")
    with pytest.raises(RunFolderError, match=msg):
        run_bench("smoke", ["cfgrl"], 1, out_dir=out, report_only=True, log=lambda *_: None)
    with pytest.raises(RunFolderError, match=msg):  # and before any data is made for a run
        run_bench("smoke", ["cfgrl"], 1, out_dir=out, log=lambda *_: None)
    assert not os.path.exists(os.path.join(out, "data"))
    # made with the old omega as an override the folder records: a report needs no overrides typed again, and
    # refuses other ones
    other = str(tmp_path / "overridden")
    _own_bench_folder(other, suite, {"omega": config["omega"] + 2.0}, False, print)
    moved = _run_dir(other, suite.tasks[0], "cfgrl", 0, "result.json")
    os.makedirs(os.path.dirname(moved))
    os.rename(path, moved)
    summary = run_bench("smoke", ["cfgrl"], 1, out_dir=other, report_only=True, log=lambda *_: None)
    assert summary["agents"]["cfgrl"]["category"] == (50.0, 0.0)
    with pytest.raises(RunFolderError, match=r"bench.json was made with overrides = \{'omega': 2.0\}, but this "
                                             r"command asks for \{'omega': 1.0\}"):
        run_bench("smoke", ["cfgrl"], 1, out_dir=other, report_only=True, log=lambda *_: None,
                  overrides={"omega": 1.0})


# ------------------------------------------------------------------------------------------------ leftovers, disk
def test_temp_files_of_dead_writers_are_removed_and_said(tmp_path, dataset):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    stale = ckpts / f".tmp-{dead.pid}-abc.dpl"
    live = ckpts / f".tmp-{os.getppid()}-abc.dpl"  # a live writer's file is not touched
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    said = []
    train(str(tmp_path), TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100), log=said.append)
    assert not stale.exists() and live.exists()
    assert any(s.startswith("removed 1 temporary file(s) left by a killed process: " + stale.name) for s in said)
    live.unlink()
    leftovers = [f for d, _, fs in os.walk(tmp_path) for f in fs if f.startswith(".tmp-")]
    assert leftovers == []  # a normal run leaves none


def test_a_full_disk_names_the_file_and_the_intact_checkpoint(tmp_path, pointmaze_files, monkeypatch):
    import dipole.storage as storage

    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the disk fills up while the second checkpoint is written
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".dpl"):
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    run = str(tmp_path / "run")
    first, second = (os.path.join(run, "checkpoints", f"ckpt-{s:08d}.dpl") for s in (100, 200))
    with pytest.raises(SystemExit) as e:
        main(["train", "--env", TASK, "--dataset", pointmaze_files["train_path"], "--preset", "tiny", "--steps",
              "300", "--log-every", "100", "--save-every", "100", "--eval-episodes", "0", "--run-dir", run,
              "--no-progress"])
    assert str(e.value) == (f"error: no space left writing {second}; last good checkpoint {first} is intact; free "
                            "disk space and rerun with --resume")
    assert list_checkpoints(run) == [first] and read_header(first)["step"] == 100
    assert not [f for f in os.listdir(os.path.join(run, "checkpoints")) if f.startswith(".tmp-")]
    with pytest.raises(NoSpaceError):  # the Python API raises it too, as an OSError a caller can catch
        monkeypatch.setattr(storage.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        write_checkpoint(str(tmp_path / "x.dpl"), {"agent": "bc"}, {})


def test_eval_names_the_corrupt_checkpoints_it_skips(tmp_path, dataset, capsys):
    run = str(tmp_path)
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(300, keep_checkpoints=3), **QUIET)
    newest = list_checkpoints(run)[-1]
    data = open(newest, "rb").read()
    open(newest, "wb").write(data[:-10])
    main(["eval", "--checkpoint", run, "--omega", "1", "--num-candidates", "1", "--episodes", "1"])
    captured = capsys.readouterr()
    assert f"warning: skipped {newest}: corrupt or truncated (expected {len(data)} bytes, found {len(data) - 10})" \
        in captured.err
    assert "warning: using " + os.path.join(run, "checkpoints", "ckpt-00000200.dpl") in captured.err
    assert "(agent dipole, step 200)" in captured.out


# ------------------------------------------------------------------------------------------------ eval arguments
def test_eval_checks_every_value_before_evaluating_and_refuses_zero_episodes(tmp_path, dataset):
    run = str(tmp_path)
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100), **QUIET)
    with pytest.raises(SystemExit, match=r"^error: omega must be >= 0 \(0 samples pi\+, larger is greedier\), "
                                         r"got -1.0$"):
        main(["eval", "--checkpoint", run, "--omega", "0", "1", "-1", "--episodes", "1"])
    with pytest.raises(SystemExit, match=r"^error: num_candidates must be >= 1"):
        main(["eval", "--checkpoint", run, "--num-candidates", "1", "0", "--episodes", "1"])
    with pytest.raises(SystemExit, match=r"^error: --episodes must be >= 1, got 0$"):
        main(["eval", "--checkpoint", run, "--episodes", "0"])
    assert not [f for f in os.listdir(run) if f.startswith("eval-step")]  # nothing was evaluated


def test_eval_of_an_agent_without_omega_evaluates_once(tmp_path, dataset, capsys):
    run = str(tmp_path)
    config = get_agent("bc")[1]().replace(**{k: v for k, v in TINY.items()})
    train(run, TASK, dataset, "bc", config, _settings(100), **QUIET)
    main(["eval", "--checkpoint", run, "--episodes", "1", "--num-candidates", "1"])
    rows = json.load(open(os.path.join(run, "eval-step00000100-1.json")))
    assert [(r["omega"], r["num_candidates"]) for r in rows] == [(None, 1)]


def test_only_the_librarys_own_errors_become_one_line(monkeypatch):
    import dipole.cli as cli

    def bug(a):
        raise ValueError("a real bug")

    monkeypatch.setitem(cli.ACTIONS, "data", bug)
    with pytest.raises(ValueError, match="a real bug"):  # a bug keeps its traceback
        main(["data", "highway"])

    def refusal(a):
        raise UsageError("bad input")

    monkeypatch.setitem(cli.ACTIONS, "data", refusal)
    with pytest.raises(SystemExit, match="^error: bad input$"):
        main(["data", "highway"])


# ------------------------------------------------------------------------------------------------ settings, rules
def test_default_intervals_fit_any_number_of_steps():
    s = TrainSettings(steps=300)  # eval_every / save_every default to 100000: "only at the end"
    assert (s.log_every, s.eval_every, s.save_every) == (300, 300, 300)
    s = TrainSettings(steps=1000, log_every=300)
    assert (s.eval_every, s.save_every) == (1000, 1000)
    with pytest.raises(UsageError, match=r"eval_every \(500\) must be a multiple of log_every \(300\)"):
        TrainSettings(steps=1000, log_every=300, eval_every=500)
    f = FinetuneSettings(online_steps=300)
    assert (f.log_every, f.save_every) == (300, 300)


def test_a_task_rule_key_that_matches_no_field_is_refused(monkeypatch):
    from dipole.agents import check_rule_key, presets

    for _, rules in presets.TASK_RULES:
        for key in rules:
            check_rule_key(key)  # every rule shipped names a real field
    monkeypatch.setattr(presets, "TASK_RULES", presets.TASK_RULES + [("pointmaze-*", {"dipole.omgea": 2.0})])
    with pytest.raises(UsageError, match=r"task rule key 'dipole.omgea': agent 'dipole' has no config field 'omgea'"):
        build_config("dipole", TASK)
    monkeypatch.setattr(presets, "TASK_RULES", [("*", {"expectle": 0.5})])
    with pytest.raises(UsageError, match=r"task rule key 'expectle' is a config field of no agent"):
        build_config("iql", TASK)
    monkeypatch.setattr(presets, "TASK_RULES", [("*", {"dipol.omega": 0.5})])
    with pytest.raises(UsageError, match=r"task rule key 'dipol.omega' names no agent"):
        build_config("bc", TASK)



def test_the_protocols_frozen_headlines_apply_to_ogbench_tasks_only_and_explicit_overrides_win():
    # results/protocol.md, rule 3 on the development suites: DIPOLE omega 0, K 32, tilt (chosen for its iql critic form,
    # and applied to it alone), round 3's omega 2, K 32, tilt for the authors' form; CFGRL omega 0, K 1; IFQL K 4
    iql = {"critic": "iql"}
    for task in ("pointmaze-medium-navigate-singletask-task1-v0", "cube-double-play-singletask-task2-v0",
                 "scene-play-singletask-task3-v0", "puzzle-3x3-play-singletask-task4-v0"):
        d, c, i = (build_config(a, task, "small", iql if a == "dipole" else None) for a in ("dipole", "cfgrl", "ifql"))
        assert (d.omega, d.num_candidates, d.selection) == (0.0, 32, "tilt")
        assert (c.omega, c.num_candidates, i.num_candidates) == (0.0, 1, 4)
        p = build_config("dipole", task, "small")  # the authors' form: round 3's choice (omega 2, K 32, tilt)
        assert (p.omega, p.num_candidates, p.selection) == (2.0, 32, "tilt")
        assert (p.beta, p.k, p.shared_actor) == (1.0, 0.0, False)  # its training stays at the authors' defaults
        a = build_config("dipole", task, "small", {"omega": 0.0, "selection": "argmax"})  # the authors' sampling
        assert (a.omega, a.num_candidates, a.selection) == (0.0, 32, "argmax")
    for task in ("highway-fast-v0", "antmaze-large-navigate-singletask-task1-v0"):  # outside the four categories
        p = build_config("dipole", task, "small")
        assert (p.omega, p.num_candidates, p.selection) == (0.0, 32, "argmax")
    d, c, i = (build_config(a, "highway-fast-v0", "small", iql if a == "dipole" else None)
               for a in ("dipole", "cfgrl", "ifql"))
    assert (d.omega, c.omega, c.num_candidates, i.num_candidates) == (1.0, 2.0, 1, 32)  # the configs' defaults
    c = build_config("cfgrl", TASK, "small", {"omega": 2.0, "num_candidates": 32})
    assert (c.omega, c.num_candidates, build_config("ifql", TASK, "small", {"num_candidates": 32}).num_candidates) == (
        2.0, 32, 32)


def test_round_2_training_choices_apply_to_the_four_ogbench_categories_only_and_explicit_overrides_win():
    # results/protocol.md, round 2 freeze: DIPOLE one network, IQL alpha 3; IFQL, CFGRL keep expectile 0.9
    for task in ("pointmaze-medium-navigate-singletask-task1-v0", "cube-single-play-singletask-task1-v0",
                 "scene-play-singletask-task3-v0", "puzzle-3x3-play-singletask-task4-v0"):
        assert build_config("dipole", task, "small", {"critic": "iql"}).shared_actor is True
        assert build_config("dipole", task, "small").shared_actor is False  # the authors' form: two networks
        assert build_config("iql", task, "small").alpha == 3.0
        assert build_config("ifql", task).expectile == build_config("cfgrl", task).expectile == 0.9
    for task in ("highway-fast-v0", "antmaze-large-navigate-singletask-task1-v0", "dmc-walker-walk"):
        assert build_config("dipole", task).shared_actor is False
        assert build_config("iql", task).alpha == (1.0 if task.startswith("highway") else 10.0)
    assert build_config("dipole", TASK, "small", {"critic": "iql", "shared_actor": False}).shared_actor is False
    assert build_config("iql", TASK, "small", {"alpha": 10.0}).alpha == 10.0
    assert build_config("fql", "cube-single-play-singletask-task1-v0").alpha == 300.0  # FQL's choice: its own commit

# ------------------------------------------------------------------------------------------------ acting, streams
def test_iql_acts_with_its_mean_at_temperature_0_and_samples_at_1():
    agent = make("iql", np.zeros(3), np.zeros(2), preset="tiny")
    obs = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    mean = np.clip(np.asarray(agent.actor_net.apply(agent.params["actor"], obs)[0]), -1, 1)
    for t in (None, 0.0):
        np.testing.assert_array_equal(np.asarray(agent.sample_actions(obs, k1, temperature=t)), mean)
        np.testing.assert_array_equal(np.asarray(agent.sample_actions(obs, k2, temperature=t)), mean)
    a1, a2 = (np.asarray(agent.sample_actions(obs, k, temperature=1.0)) for k in (k1, k2))
    assert not np.allclose(a1, a2) and not np.allclose(a1, mean)
    np.testing.assert_array_equal(a1, np.asarray(agent.sample_actions(obs, k1, temperature=1.0)))
    with pytest.raises(UsageError, match="agent 'dipole' samples from a flow and has no temperature"):
        make("dipole", np.zeros(3), np.zeros(2), preset="tiny").sample_actions(obs, k1, temperature=1.0)


def test_finetune_acts_iql_at_temperature_1(tmp_path, dataset, monkeypatch):
    from dipole.agents.iql import IQLAgent
    from dipole.runners.online import finetune

    seen = []
    real = IQLAgent.sample_actions

    def spy(self, obs, rng, omega=None, num_candidates=None, temperature=None):
        seen.append(temperature)
        return real(self, obs, rng, omega, num_candidates, temperature)

    monkeypatch.setattr(IQLAgent, "sample_actions", spy)
    agent = make("iql", dataset["observations"][:1], dataset["actions"][:1], preset="tiny")
    finetune(str(tmp_path), TASK, dataset, agent, FinetuneSettings(online_steps=3, eval_episodes=0, progress=False),
             **QUIET)
    assert seen[-3:] == [1.0, 1.0, 1.0]


def _consumed(name, root):
    """The keys a stream hands out, as its one consumer draws them (a stream never mixes split and fold_in, which
    can coincide in JAX: fold_in(k, i) == split(k, n)[i])."""
    if name == "init":  # the agent's create: split into its networks' keys
        return list(jax.random.split(root, 4))
    if name == "eval":  # evaluation: key, sub = split(key) once per policy call
        out, key = [], root
        for _ in range(3):
            key, sub = jax.random.split(key)
            out.append(sub)
        return out
    return [jax.random.fold_in(root, step) for step in range(3)]  # data, val, act: folded with the step


def test_random_streams_of_a_run_and_of_neighbouring_seeds_never_coincide():
    from dipole.seeding import stream_seed

    keys = {}
    for seed in range(4):
        for name in STREAMS:
            root = stream_key(seed, name)
            for j, k in enumerate([root, *_consumed(name, root)]):
                keys[(seed, name, j)] = tuple(np.asarray(jax.random.key_data(k)).ravel().tolist())
    assert len(set(keys.values())) == len(keys)
    # before: seeds used directly, so evaluation's first key was the actor's init key and seed 1's init key was
    # seed 0's data key
    assert keys[(0, "eval", 1)] != keys[(0, "init", 2)] and keys[(1, "init", 0)] != keys[(0, "data", 0)]
    env_seeds = {(s, name, ep): stream_seed(s, name, ep) for s in range(4) for name in ("eval", "env")
                 for ep in range(50)}  # environment resets of evaluation and of online collection
    assert len(set(env_seeds.values())) == len(env_seeds)


def test_library_errors_are_still_the_builtin_types_callers_catch():
    assert issubclass(UsageError, ValueError) and issubclass(RunFolderError, RuntimeError)
    assert issubclass(NoSpaceError, OSError) and all(issubclass(c, DipoleError)
                                                     for c in (UsageError, RunFolderError, NoSpaceError))


# ------------------------------------------------------------------------------------------------ found by trying it
def test_overwrite_keeps_the_earlier_run_when_the_new_command_fails(tmp_path, pointmaze_files, dataset):
    run = str(tmp_path)
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100), **QUIET)
    with pytest.raises(SystemExit, match=r"^error: "):  # a typo in --dataset
        main(["train", "--env", TASK, "--dataset", str(tmp_path / "nope.npz"), "--run-dir", run, "--overwrite"])
    assert [os.path.basename(c) for c in list_checkpoints(run)] == ["ckpt-00000100.dpl"]


def test_a_damaged_header_length_is_a_corrupt_checkpoint_not_a_crash(tmp_path, dataset):
    from dipole.storage import MAGIC, CheckpointError

    run = str(tmp_path)
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(200), **QUIET)
    path = list_checkpoints(run)[0]
    data = bytearray(open(path, "rb").read())
    data[len(MAGIC) + 6] ^= 0xFF  # the header length now claims terabytes
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_header(path)
    train(run, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(300), resume=True, **QUIET)  # rotation too


def test_a_bad_omega_in_the_config_fails_before_training(tmp_path, dataset):
    with pytest.raises(UsageError, match=r"omega must be >= 0"):
        train(str(tmp_path), TASK, dataset, "dipole", DIPOLEConfig(**TINY, omega=-2.0), _settings(100), **QUIET)
    assert list_checkpoints(str(tmp_path)) == []


def test_resume_refuses_fewer_steps_and_another_runs_checkpoint(tmp_path, dataset):
    import shutil

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(a, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(200), **QUIET)
    with pytest.raises(UsageError, match=r"is at step 200, past --steps 100; pass --steps 200 or more"):
        train(a, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(100), resume=True, **QUIET)
    train(b, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(300), **QUIET)
    foreign = os.path.join(a, "checkpoints", "ckpt-00000300.dpl")
    shutil.copy(os.path.join(b, "checkpoints", "ckpt-00000300.dpl"), foreign)
    with pytest.raises(RunFolderError, match=rf"--resume: {foreign} belongs to another run"):
        train(a, TASK, dataset, "dipole", DIPOLEConfig(**TINY), _settings(400), resume=True, **QUIET)


def test_a_finetune_can_be_extended_with_more_online_steps(tmp_path, dataset):
    from dipole.runners.online import finetune

    agent = make("dipole", dataset["observations"][:1], dataset["actions"][:1], preset="tiny", flow_steps=2)
    s = dict(episode_length=10, eval_episodes=0, save_every=10, log_every=10, progress=False)
    finetune(str(tmp_path), TASK, dataset, agent, FinetuneSettings(online_steps=20, **s), source="x", **QUIET)
    _, buffer = finetune(str(tmp_path), TASK, dataset, agent, FinetuneSettings(online_steps=30, **s), resume=True,
                         source="x", **QUIET)
    assert buffer.count == 30
    with pytest.raises(RunFolderError, match=r"was made with source = 'x', but this command asks for 'y'"):
        finetune(str(tmp_path), TASK, dataset, agent, FinetuneSettings(online_steps=40, **s), resume=True,
                 source="y", **QUIET)


def test_temp_files_of_a_zombie_writer_are_removed(tmp_path):
    import time

    from dipole.storage import remove_stale_temp_files

    child = subprocess.Popen(["true"])
    pid = child.pid
    for _ in range(500):  # the child has exited but is not reaped: a zombie
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    stale = tmp_path / f".tmp-{pid}-x.dpl"
    stale.write_bytes(b"")
    try:
        assert remove_stale_temp_files(str(tmp_path)) == [str(stale)]
    finally:
        child.wait()
