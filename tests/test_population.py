"""Populations: members equal solo runs, exact resume, OGBench's relabelling per task, memory refusal."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import TINY

from dipole.agents import DIPOLEConfig, get_agent
from dipole.data.ogbench import load_ogbench
from dipole.errors import RunFolderError, UsageError
from dipole.runners.evaluation import evaluate_agent
from dipole.runners.loop import train, train_population
from dipole.runners.offline import TrainSettings
from dipole.runners.population import (
    Member,
    Population,
    PopulationData,
    evaluate_population,
    load_population,
    members_of,
    population_memory,
)

TASKS = [f"pointmaze-medium-navigate-singletask-task{i}-v0" for i in (1, 2, 3, 4, 5)]
QUIET = dict(log=lambda *a: None)


def _settings(steps, **kw):
    return TrainSettings(**{"steps": steps, "log_every": 50, "eval_every": 0, "eval_episodes": 0,
                            "save_every": steps, "progress": False, **kw})


@pytest.fixture(scope="module")
def per_task(pointmaze_files):
    out = {}
    for task in TASKS:
        env, train_ds, val_ds = load_ogbench(task, dataset_path=pointmaze_files["train_path"])
        env.close()
        out[task] = (train_ds, val_ds)
    return out


@pytest.fixture(scope="module")
def pop_data(per_task):
    return (PopulationData(TASKS, [per_task[t][0] for t in TASKS]),
            PopulationData(TASKS, [per_task[t][1] for t in TASKS]))


def _leaves_close(a, b, atol=1e-5):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    worst = max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(la, lb))
    assert worst <= atol, worst


def test_reward_columns_are_ogbench_relabelling_of_every_task(per_task, pop_data):
    data, val = pop_data
    for i, task in enumerate(TASKS):
        train_ds, val_ds = per_task[task]
        np.testing.assert_array_equal(data.rewards[:, i], train_ds["rewards"])
        np.testing.assert_array_equal(data.masks[:, i], train_ds["masks"])
        np.testing.assert_array_equal(val.rewards[:, i], val_ds["rewards"])
        for key in ("observations", "actions", "next_observations"):
            np.testing.assert_array_equal(data.shared[key], train_ds[key])
        assert data.dataset(task).fingerprint() == train_ds.fingerprint()
    # the tasks really differ: a test of column order needs different columns
    assert len({data.rewards[:, i].tobytes() for i in range(len(TASKS))}) > 1


def test_population_data_refuses_tasks_that_do_not_share_observations(per_task):
    a = per_task[TASKS[0]][0]
    other = dict(a.arrays)
    other["observations"] = other["observations"] + 1.0
    from dipole.data.dataset import Dataset

    with pytest.raises(UsageError, match="field 'observations' differs"):
        PopulationData(TASKS[:2], [a, Dataset(other, name="shifted.npz")])


@pytest.mark.parametrize("agent_name", ["dipole", "fql"])
def test_member_equals_the_same_task_and_seed_trained_alone(tmp_path, per_task, pop_data, agent_name):
    config = get_agent(agent_name)[1]().replace(**TINY)
    members = [Member(TASKS[0], 0), Member(TASKS[2], 1), Member(TASKS[2], 3)]
    pop = train_population(str(tmp_path / "pop"), members, pop_data[0], agent_name, config, _settings(100),
                           val_data=pop_data[1], **QUIET)
    for i in (2,):  # the last member: on two devices it shares a device with the padding copy of the first
        task, seed = members[i].task, members[i].seed
        alone = train(str(tmp_path / f"solo{i}"), task, per_task[task][0], agent_name, config,
                      _settings(100, seed=seed), val_dataset=per_task[task][1], **QUIET)
        member = pop.member(i)
        assert int(member.step) == int(alone.step) == 100
        _leaves_close(member.params, alone.params)
        obs = per_task[task][0]["observations"][:7]
        key = jax.random.PRNGKey(5)
        np.testing.assert_allclose(np.asarray(member.sample_actions(obs, key)),
                                   np.asarray(alone.sample_actions(obs, key)), atol=1e-4)
        # the whole population acts in one call, each member as it would alone
        batch = np.stack([obs] * len(members))
        keys = jax.numpy.stack([key] * len(members))
        np.testing.assert_allclose(np.asarray(pop.sample_actions(batch, keys))[i],
                                   np.asarray(alone.sample_actions(obs, key)), atol=1e-4)
    # validation losses were logged per member
    rows = open(tmp_path / "pop" / "metrics.csv").read().splitlines()
    assert "val/" in rows[0] and len(rows) == 1 + 2 * len(members)


def test_batched_evaluation_equals_evaluating_each_member_alone(tmp_path, pop_data, short_episodes):
    members = [Member(TASKS[0], 0), Member(TASKS[1], 2)]
    pop = train_population(str(tmp_path), members, pop_data[0], "dipole",
                           DIPOLEConfig(**TINY).replace(num_candidates=2), _settings(50), **QUIET)
    rows = evaluate_population(pop, episodes=3, num_envs=2)  # two rounds of episodes, the second one short
    for i, m in enumerate(members):
        alone = evaluate_agent(pop.member(i), m.task, 3, seed=m.seed, num_envs=2)
        for key in ("success", "return", "length", "omega", "num_candidates"):
            assert rows[i][key] == pytest.approx(alone[key], abs=1e-6), key
        assert rows[i]["length"] == 200  # every episode ran to the limit


def test_population_resume_after_a_kill_is_exact(tmp_path, pop_data):
    members = members_of(TASKS[:2], [0, 1])
    config = DIPOLEConfig(**TINY)
    straight = train_population(str(tmp_path / "a"), members, pop_data[0], "dipole", config, _settings(100),
                                **QUIET)
    # a killed run: its last checkpoint is at step 50, the process died later
    run = str(tmp_path / "b")
    train_population(run, members, pop_data[0], "dipole", config, _settings(50), **QUIET)
    resumed = train_population(run, members, pop_data[0], "dipole", config, _settings(100, save_every=50),
                               resume=True, **QUIET)
    for x, y in zip(jax.tree_util.tree_leaves(straight.agents), jax.tree_util.tree_leaves(resumed.agents)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    loaded, header = load_population(run)
    assert header["step"] == 100 and loaded.members == members
    for x, y in zip(jax.tree_util.tree_leaves(loaded.agents), jax.tree_util.tree_leaves(resumed.agents)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    rows = [r.split(",")[:3] for r in open(os.path.join(run, "metrics.csv")).read().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [s for s in (50, 100) for _ in members]


def test_resume_with_other_members_is_refused(tmp_path, pop_data):
    config = DIPOLEConfig(**TINY)
    train_population(str(tmp_path), members_of(TASKS[:2], [0]), pop_data[0], "dipole", config, _settings(50),
                     **QUIET)
    with pytest.raises(RunFolderError, match="was made with members = "):
        train_population(str(tmp_path), members_of(TASKS[:2], [0, 1]), pop_data[0], "dipole", config,
                         _settings(100), resume=True, **QUIET)


def test_too_large_population_is_refused_before_compiling(tmp_path, pop_data, monkeypatch):
    from dipole.runners import population as P

    def no_compile(*a, **k):
        raise AssertionError("compiled a population that does not fit")

    monkeypatch.setattr(P.population_chunk, "lower", no_compile)
    members = members_of(TASKS, [0, 1])
    with pytest.raises(UsageError) as e:
        train_population(str(tmp_path), members, pop_data[0], "dipole", DIPOLEConfig(**TINY), _settings(50),
                         memory_free=pop_data[0].nbytes() + 2 * 2**20, **QUIET)
    msg = str(e.value)
    assert "population of 10 members needs about" in msg and "at most 4 members" in msg and "--max-population" in msg


def test_memory_estimate_grows_as_data_once_plus_members(pop_data):
    agent_cls, config_cls = get_agent("dipole")
    agent = agent_cls.create(0, np.zeros((1, 4)), np.zeros((1, 2)), config_cls().replace(**TINY))
    one = population_memory(agent, 1, 1000, 64)
    ten = population_memory(agent, 10, 1000, 64)
    state = sum(x.nbytes for x in jax.tree_util.tree_leaves(agent))
    assert one["state_bytes"] == state
    assert ten["total_bytes"] - one["total_bytes"] == 9 * one["per_member_bytes"]
    two = population_memory(agent, 10, 1000, 64, devices=2)
    assert two["total_bytes"] == ten["total_bytes"] + 1000
    assert two["per_device_bytes"] == 1000 + 5 * one["per_member_bytes"]


@pytest.mark.parametrize("agent_name", ["dipole", "fql"])
def test_memory_estimate_covers_what_xla_allocates(agent_name):
    """The estimate per member is at least what XLA's own analysis of one compiled update needs, and not 20x more."""
    agent_cls, config_cls = get_agent(agent_name)
    config = config_cls().replace(actor_hidden_dims=(256, 256), value_hidden_dims=(256, 256), batch_size=256)
    agent = agent_cls.create(0, np.zeros((1, 20)), np.zeros((1, 4)), config)
    r = np.random.default_rng(0)
    batch = {"observations": r.normal(size=(256, 20)).astype(np.float32),
             "actions": r.uniform(-1, 1, (256, 4)).astype(np.float32),
             "rewards": np.zeros(256, np.float32), "masks": np.ones(256, np.float32),
             "next_observations": r.normal(size=(256, 20)).astype(np.float32)}
    analysis = type(agent).update.lower(agent, batch).compile().memory_analysis()
    xla = analysis.temp_size_in_bytes + analysis.output_size_in_bytes
    estimate = population_memory(agent, 1, 0, 256)["per_member_bytes"]
    assert xla <= estimate <= 20 * xla, (xla, estimate)


def test_population_cli_train_with_seeds(tmp_path, pointmaze_files, capsys):
    from dipole.cli import main

    run = str(tmp_path / "run")
    main(["train", "--env", TASKS[0], "--dataset", pointmaze_files["train_path"], "--preset", "tiny", "--steps",
          "100", "--log-every", "50", "--eval-every", "0", "--eval-episodes", "1", "--seeds", "0,1", "--run-dir", run,
          "--no-progress"])
    out = capsys.readouterr().out
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert [m["seed"] for m in summary["members"]] == [0, 1]
    assert all(m["final_evaluation"]["episodes"] == 1 for m in summary["members"])
    for seed in (0, 1):
        assert os.path.exists(os.path.join(run, "members", f"{TASKS[0]}-seed{seed}.dpl"))
    assert "population of 2" in out


def test_population_class_checks_sampling_arguments(pop_data, tmp_path, capsys):
    pop = train_population(str(tmp_path), [Member(TASKS[0], 0)], pop_data[0], "bc",
                           get_agent("bc")[1]().replace(**TINY), _settings(50, progress=True), **QUIET)
    assert isinstance(pop, Population)
    bar = capsys.readouterr().err  # the progress bar shows BC's own loss (it has no critic), never a nan
    assert "bc_loss=" in bar and "nan" not in bar
    with pytest.raises(UsageError, match="no greediness knob"):
        pop.sample_actions(np.zeros((1, 2, pop.agents.obs_dim)), jax.numpy.stack([jax.random.PRNGKey(0)]), omega=1.0)


def test_dipole_train_from_python_takes_tasks_and_seeds(tmp_path, per_task):
    import dipole

    tasks = TASKS[1:3]
    pop = dipole.train(str(tmp_path), tasks, [per_task[t][0] for t in tasks], "bc",
                       get_agent("bc")[1]().replace(**TINY), _settings(50), seeds=[4, 7], **QUIET)
    assert pop.members == members_of(tasks, [4, 7]) and len(pop) == 4
    single = dipole.train(str(tmp_path / "one"), tasks[0], per_task[tasks[0]][0], "bc",
                          get_agent("bc")[1]().replace(**TINY), _settings(50, seed=7), **QUIET)
    _leaves_close(pop.member(1).params, single.params)


class _NoisyEnv:
    """Reset noise from numpy's global RNG (as OGBench's mazes draw it) and episodes whose length depends on the
    reset: members' episodes end at different steps, so keys and RNG draws must advance per member."""

    def reset(self, seed=None):
        self.r = np.random.default_rng(seed)
        self.noise = float(np.random.uniform())
        self.t, self.length = 0, 1 + int(self.r.integers(0, 6))
        return np.array([self.noise, 0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        draw = float(np.random.uniform())  # a step may draw from the global RNG too
        obs = np.array([float(action[0]) + draw, self.t], np.float32)
        return obs, float(action[0]) + self.noise, self.t >= self.length, False, {"success": draw > 0.5}


def test_grouped_episodes_replay_each_members_solo_episodes_exactly():
    from dipole.runners.evaluation import run_episodes, run_group_episodes

    seen = {}

    def solo_act(obs, key):
        return np.asarray(jax.random.uniform(key, (len(obs), 1)))

    def group_act(obs, keys):
        return np.asarray(jax.vmap(lambda k: jax.random.uniform(k, (obs.shape[1], 1)))(keys))

    seeds = [3, 0, 11]
    grouped = run_group_episodes(group_act, [[_NoisyEnv() for _ in range(2)] for _ in seeds], 5, seeds)
    for s, g in zip(seeds, grouped):
        alone = run_episodes(solo_act, "fake", 5, seed=s, envs=[_NoisyEnv() for _ in range(2)])
        seen[s] = alone
        assert g == alone
    assert len({json.dumps(v, sort_keys=True) for v in seen.values()}) == len(seeds)  # the members really differ


def test_evaluation_workers_step_the_same_episodes_as_this_process():
    """Members' environments held by 2 worker processes give exactly the results of the same environments held in
    this process (pointmaze: each reset draws from numpy's global RNG), over two rounds of episodes, and again when
    the workers are reused; a task no worker can make fails with the worker's own error, its traceback as the cause."""
    from dipole.runners.evaluation import EvalWorkers, close_eval_envs, make_eval_envs, run_group_episodes

    task, seeds = "pointmaze-medium-navigate-singletask-task1-v0", [3, 0, 11]

    def recording(seen):
        def act(obs, keys):  # depends on the observation and on each member's key
            seen.append(obs.copy())
            shift = (np.asarray(keys)[:, None, :1] % 7).astype(np.float32) / 7
            return np.clip(np.sin(3 * obs[..., :2]) + shift - 0.5, -1, 1)

        return act

    here = [make_eval_envs(task, 3, 2) for _ in seeds]
    workers = EvalWorkers([(task, 2)] * len(seeds), workers=2)
    seen = {"alone": [], "apart": [], "again": []}
    try:
        assert [len(range(*blk)) for blk in workers.blocks] == [2, 1]
        alone = run_group_episodes(recording(seen["alone"]), here, 3, seeds)
        apart = run_group_episodes(recording(seen["apart"]), workers, 3, seeds)
        again = run_group_episodes(recording(seen["again"]), workers, 3, seeds)
    finally:
        close_eval_envs(here)
        close_eval_envs(workers)
    assert apart == alone and again == alone
    # every observation of every step (2 rounds of 1000 steps) is the same, and the members' episodes differ
    assert len(seen["alone"]) == 2000
    for name in ("apart", "again"):
        assert len(seen[name]) == 2000 and all(np.array_equal(a, b) for a, b in zip(seen["alone"], seen[name]))
    first = seen["alone"][0]
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], first[2])
    assert workers.procs == []
    with pytest.raises(UsageError, match="unknown environment: 'no-such-task'") as err:  # the worker's own error
        EvalWorkers([("no-such-task", 1)] * 2, workers=2)
    assert "in an evaluation worker process" in str(err.value.__cause__)


def test_single_agent_loaders_refuse_a_population_checkpoint(tmp_path, pop_data):
    import dipole

    train_population(str(tmp_path), [Member(TASKS[0], 0)], pop_data[0], "bc", get_agent("bc")[1]().replace(**TINY),
                     _settings(50), **QUIET)
    with pytest.raises(UsageError, match="holds a population of 1 bc agents"):
        dipole.load(str(tmp_path))


def test_population_evaluation_holds_a_bounded_number_of_environments():
    """An OGBench manipulation environment holds about 200 MB: a population of many members gets fewer environments
    each (at least one), so that all of them together stay within MAX_POPULATION_EVAL_ENVS."""
    from types import SimpleNamespace

    from dipole.runners.population import MAX_POPULATION_EVAL_ENVS, Member, population_eval_envs

    task = "pointmaze-medium-navigate-singletask-task1-v0"
    few = SimpleNamespace(members=[Member(task, s) for s in range(2)])
    many = SimpleNamespace(members=[Member(task, s) for s in range(MAX_POPULATION_EVAL_ENVS // 2 + 1)])
    for pop, per_member in ((few, 10), (many, 1)):
        envs = population_eval_envs(pop, 10)
        assert [len(e) for e in envs] == [per_member] * len(pop.members)
        for e in (e for per in envs for e in per):
            e.close()
    assert [len(e) for e in population_eval_envs(few, 10, num_envs=3)] == [3, 3]  # asked for: as asked


def test_a_population_acts_under_every_omega_with_one_compiled_program():
    """omega is traced: a sweep over omegas compiles the population's act once per (K, selection), not per omega."""
    from dipole.runners import population as P

    members = [Member(TASKS[0], 0), Member(TASKS[0], 1)]
    obs = np.zeros((1, 2), np.float32)
    pop = Population(P.create_members("dipole", DIPOLEConfig(**TINY), members, obs, np.zeros((1, 2), np.float32)),
                     members)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    before = P._population_act._cache_size()
    acts = [pop.sample_actions(np.zeros((2, 3, 2), np.float32), keys, omega=w, num_candidates=1) for w in (0, 1, 2.5)]
    assert P._population_act._cache_size() == before + 1
    assert acts[0].shape == (2, 3, 2) and not np.allclose(acts[0], acts[2])  # the omegas did act differently
