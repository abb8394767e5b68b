"""Highway driving: reward terms add up, scripted-driver data loads and reweights, a tiny train/eval runs."""

import dataclasses
import os

import numpy as np
import pytest

pytest.importorskip("highway_env", reason="the highway benchmark needs `pip install 'dipole-rl[highway]'`")

from conftest import TINY  # noqa: E402

from dipole.data.highway import load_highway  # noqa: E402
from dipole.datagen.highway import DRIVERS, driver_action, generate_highway  # noqa: E402
from dipole.envs.highway import DEFAULT_WEIGHTS, OBS_DIM, OBS_NAMES, TERMS, HighwayDriving, parse_highway_name  # noqa: E402


def test_reward_terms_sum_to_the_logged_return():
    env = HighwayDriving("highway-fast-v0:collision=7,lane=0.5")
    assert env.weights == {**DEFAULT_WEIGHTS, "collision": 7.0, "lane": 0.5}
    obs, _ = env.reset(seed=3)
    assert obs.shape == (OBS_DIM,) == (30,) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    total, state, done, steps = 0.0, {}, False, 0
    per_term = dict.fromkeys(TERMS, 0.0)
    while not done:
        obs, reward, term, trunc, info = env.step(driver_action(DRIVERS[3], env, state, rng))
        assert reward == pytest.approx(sum(info["terms"].values()), abs=1e-9)
        for t in TERMS:
            assert info["terms"][t] == pytest.approx(env.weights[t] * info["raw_terms"][t])
            per_term[t] += info["terms"][t]
        total += reward
        steps += 1
        done = term or trunc
    stats = info["episode_stats"]
    assert sum(stats[f"return_{t}"] for t in TERMS) == pytest.approx(total, abs=1e-6)
    for t in TERMS:
        assert stats[f"return_{t}"] == pytest.approx(per_term[t])
    assert stats["collision"] == float(info["crashed"])
    assert stats["failure"] == float(stats["collision"] or stats["offroad"])
    assert stats["mean_speed"] > 10 and stats["distance"] > 0 and steps <= 151


def test_observation_states_gaps_and_speeds_in_metres():
    """On the straight highway the slot values are plain geometry: check them against the simulator's vehicles."""
    env = HighwayDriving("highway-fast-v0")
    rng = np.random.default_rng(1)
    state, checked = {}, 0
    env.reset(seed=11)
    for _ in range(30):
        obs, *_ = env.step(driver_action(DRIVERS[1], env, state, rng))
        o = dict(zip(OBS_NAMES, obs))
        road, ego = env.unwrapped.road, env.vehicle
        assert o["ego_speed"] * 5 + 25 == pytest.approx(ego.speed * np.cos(ego.heading), abs=1e-4)
        assert o["ego_lane_offset"] * 2 == pytest.approx(ego.position[1] - 4.0 * ego.lane_index[2], abs=1e-4)
        front, rear = road.neighbour_vehicles(ego, ego.lane_index)
        if front is not None and front.position[0] - ego.position[0] < 100:
            assert o["same_ahead_present"] == 1.0
            assert o["same_ahead_gap"] * 50 == pytest.approx(front.position[0] - ego.position[0] - 5.0, abs=1e-3)
            assert o["same_ahead_rel_speed"] * 5 == pytest.approx(front.speed - ego.speed, abs=1e-4)
            checked += 1
        if rear is None:
            assert (o["same_behind_present"], o["same_behind_gap"]) == (0.0, 2.0)
        assert o["left_lane_exists"] == float(ego.lane_index[2] > 0)
        assert o["right_lane_exists"] == float(ego.lane_index[2] < 2)
    assert checked > 10


def test_distracted_driver_ignores_the_car_ahead_during_a_lapse():
    distracted = next(d for d in DRIVERS if d.name == "distracted")
    env = HighwayDriving("highway-fast-v0")
    env.reset(seed=0)
    always = dataclasses.replace(distracted, lapse_rate=1.0, lapse_steps=(3, 3), noise=0.0, steer_noise=0.0)
    attentive = dataclasses.replace(distracted, lapse_rate=0.0, noise=0.0, steer_noise=0.0)
    ego = env.vehicle
    front = env.unwrapped.road.neighbour_vehicles(ego, ego.lane_index)[0]
    front.position[0] = ego.position[0] + 8.0  # a slower car 3 m ahead (bumper to bumper)
    front.speed = ego.speed - 5.0
    rng = np.random.default_rng(0)
    assert driver_action(attentive, env, {}, rng)[0] == -1.0  # brakes as hard as it can
    state = {}
    action = driver_action(always, env, state, rng)
    assert action[0] > 0  # does not look: accelerates towards its target speed
    assert state["lapse"] == 2  # three steps long, one spent
    assert state["drift"] != 0 and action[1] == pytest.approx(state["drift"])  # and the wheel is left where it was
    assert driver_action(always, env, state, rng)[1] == pytest.approx(state["drift"]) and state["lapse"] == 1


def test_bad_names_and_actions():
    with pytest.raises(ValueError, match="unknown highway environment"):
        parse_highway_name("highway-slow-v0")
    with pytest.raises(ValueError, match="must be one of"):
        parse_highway_name("highway-fast-v0:comfort=1")
    with pytest.raises(ValueError, match="finite number >= 0"):
        parse_highway_name("highway-fast-v0:speed=-1")
    env = HighwayDriving("highway-fast-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step(np.array([1.5, 0.0]))
    with pytest.raises(ValueError, match="2 finite numbers"):
        env.step(np.array([np.nan, 0.0]))


@pytest.fixture(scope="module")
def highway_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("highway")
    return generate_highway("highway-fast-v0", episodes=len(DRIVERS), workers=1, seed=0, out_dir=str(out), progress=False)


def test_generated_data_loads_validates_and_reweights(highway_data):
    data = load_highway("highway-fast-v0", highway_data["path"])
    assert len(data) == highway_data["transitions"] and data.obs_dim == OBS_DIM and data.action_dim == 2
    assert np.abs(data["actions"]).max() <= 1.0
    raw = np.load(highway_data["path"])
    # one episode per scripted driver, terminals close each, masks are 0 only on crashes / leaving the road
    assert sorted(np.unique(raw["driver"])) == list(range(len(DRIVERS))) and raw["terminals"].sum() == len(DRIVERS)
    assert np.array_equal(data["masks"] == 0, (raw["terms/collision"] < 0) | (raw["terms/offroad"] < 0))
    expected = sum(DEFAULT_WEIGHTS[t] * raw[f"terms/{t}"] for t in TERMS)
    np.testing.assert_allclose(data["rewards"], expected, rtol=1e-6)
    speed_only = load_highway("highway-fast-v0:collision=0,offroad=0,lane=0", highway_data["path"])
    np.testing.assert_allclose(speed_only["rewards"], raw["terms/speed"])
    # next_observations continue the episode
    ends = np.nonzero(raw["terminals"])[0]
    inner = np.setdiff1d(np.arange(len(data) - 1), ends)
    np.testing.assert_array_equal(data["next_observations"][inner], data["observations"][inner + 1])


def test_highway_suites_read_their_tasks_through_the_dataset_registry(highway_data, tmp_path):
    """A bench suite of reward weightings: each task's rewards are its weighting of one driving file, shared rows."""
    import shutil

    from dipole.bench.runner import _load_task, prepare_data
    from dipole.bench.suites import SUITES
    from dipole.data import load_dataset
    from dipole.runners.population import load_population_data

    suite = SUITES["smoke-highway"]
    assert suite.metric == "return" and suite.category == "highway-fast"
    shutil.copy(highway_data["path"], tmp_path / "highway-fast-v0.npz")  # there already: not driven again
    train_file = prepare_data(suite, str(tmp_path), 1, log=print)
    assert train_file == str(tmp_path / "highway-fast-v0.npz")
    data, val = load_population_data(list(suite.tasks), _load_task(suite, train_file))
    raw = np.load(train_file)
    assert val is None and data.tasks == list(suite.tasks)
    for i, task in enumerate(suite.tasks):
        weights = parse_highway_name(task)[1]
        np.testing.assert_allclose(data.rewards[:, i], sum(weights[t] * raw[f"terms/{t}"] for t in TERMS), rtol=1e-6)
        np.testing.assert_array_equal(load_dataset(task, train_file)[0]["rewards"], data.rewards[:, i])


def test_tiny_train_and_eval_end_to_end(highway_data, tmp_path):
    from dipole.agents import get_agent
    from dipole.runners.evaluation import evaluate_agent
    from dipole.runners.loop import train
    from dipole.runners.offline import TrainSettings

    data = load_highway("highway-fast-v0", highway_data["path"])
    _, cfg = get_agent("dipole")
    agent = train(str(tmp_path), "highway-fast-v0", data, "dipole", cfg(**TINY),
                  TrainSettings(steps=100, log_every=50, eval_every=0, eval_episodes=0, save_every=100, progress=False),
                  log=lambda *_: 0)
    res = evaluate_agent(agent, "highway-fast-v0", 1, omega=2.0, num_candidates=1)
    assert res["success"] is None and res["omega"] == 2.0
    for key in ("collision", "offroad", "mean_speed", "distance", *[f"return_{t}" for t in TERMS]):
        assert key in res
    assert res["return"] == pytest.approx(sum(res[f"return_{t}"] for t in TERMS), abs=1e-6)
    from dipole.runners.sweep import format_sweep_table

    header, _, row = format_sweep_table([res]).splitlines()
    assert header.endswith("| crash or off-road | mean speed (m/s) | distance (m) |")
    assert row.endswith(f"| {100 * res['failure']:.1f}% | {res['mean_speed']:.2f} | {res['distance']:.0f} |")


def test_per_term_agent_trains_on_driving_data_and_takes_term_weights(highway_data, tmp_path):
    """dipole-terms reads the data's reward per term (speed, safety = collision + off-road, lane) and is evaluated
    at user term weights; data without terms and unknown term names are refused with one line each."""
    from dipole.agents import get_agent
    from dipole.data.dataset import Dataset
    from dipole.errors import UsageError
    from dipole.runners.evaluation import evaluate_agent
    from dipole.runners.loop import train
    from dipole.runners.offline import TrainSettings

    data = load_highway("highway-fast-v0", highway_data["path"])
    raw = np.load(highway_data["path"])
    assert data.term_names == ("speed", "safety", "lane")
    np.testing.assert_array_equal(data["term_rewards"], np.stack(
        [raw["terms/speed"], raw["terms/collision"] + raw["terms/offroad"], raw["terms/lane"]], 1).astype(np.float32))
    _, cfg = get_agent("dipole-terms")
    settings = TrainSettings(steps=20, log_every=10, eval_every=0, eval_episodes=0, save_every=20, progress=False)
    agent = train(str(tmp_path / "run"), "highway-fast-v0", data, "dipole-terms", cfg(**TINY, num_candidates=4,
                                                                                          guard_term="safety"),
                  settings, log=lambda *_: 0)
    res = evaluate_agent(agent, "highway-fast-v0", 1, term_weights="safety=4,lane=0.5")
    assert res["term_weights"] == {"speed": 1.0, "safety": 4.0, "lane": 0.5} and res["num_candidates"] == 4
    assert res["return"] == pytest.approx(sum(res[f"return_{t}"] for t in TERMS), abs=1e-6)
    with pytest.raises(UsageError, match=r"this agent's terms are \['speed', 'safety', 'lane'\]"):
        evaluate_agent(agent, "highway-fast-v0", 1, term_weights={"comfort": 1.0})
    plain = Dataset({k: data[k] for k in ("observations", "actions", "rewards", "masks", "next_observations")},
                    name="plain.npz")
    with pytest.raises(UsageError, match="plain.npz: agent 'dipole-terms' needs a reward per term"):
        train(str(tmp_path / "plain"), "highway-fast-v0", plain, "dipole-terms", cfg(**TINY), settings)
    with pytest.raises(UsageError, match=r"config.terms is \['a', 'b', 'c'\]; set --config.terms speed,safety,lane"):
        train(str(tmp_path / "names"), "highway-fast-v0", data, "dipole-terms", cfg(**TINY, terms=("a", "b", "c")),
              settings)


def test_populations_over_seeds_and_reward_weightings(highway_data, tmp_path):
    """dipole-terms trains as a population (the per-term rewards are shared by every member): a member equals its
    seed trained alone and acts at the user's term weights; DIPOLE trains one member per reward weighting of the
    same data (the expensive way of moving along the trade-off), each on its own reward column."""
    import jax

    from dipole.agents import get_agent
    from dipole.errors import UsageError
    from dipole.runners.loop import train, train_population
    from dipole.runners.offline import TrainSettings
    from dipole.runners.population import PopulationData, evaluate_population

    settings = TrainSettings(steps=20, log_every=10, eval_every=0, eval_episodes=0, save_every=20, progress=False)
    quiet = dict(log=lambda *_: 0)
    env = "highway-fast-v0"
    data = load_highway(env, highway_data["path"])
    cfg = get_agent("dipole-terms")[1](**TINY)
    pop = train_population(str(tmp_path / "terms"), [(env, 0), (env, 3)], PopulationData([env], [data]),
                           "dipole-terms", cfg, settings, **quiet)
    alone = train(str(tmp_path / "solo"), env, data, "dipole-terms", cfg, TrainSettings(**{
        **settings.__dict__, "seed": 3}), **quiet)
    member = pop.member(1)
    for a, b in zip(jax.tree_util.tree_leaves(member.params), jax.tree_util.tree_leaves(alone.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    obs, key = data["observations"][:5], jax.random.PRNGKey(4)
    batch, keys = np.stack([obs, obs]), jax.numpy.stack([key, key])
    np.testing.assert_allclose(np.asarray(pop.sample_actions(batch, keys, term_weights="safety=4"))[1],
                               np.asarray(alone.sample_actions(obs, key, term_weights={"safety": 4.0})), atol=1e-4)
    rows = evaluate_population(pop, 1, term_weights={"safety": 4.0, "lane": 0.0})
    assert [r["term_weights"] for r in rows] == [{"speed": 1.0, "safety": 4.0, "lane": 0.0}] * 2
    with pytest.raises(UsageError, match="agent 'dipole-terms' has a weight per reward term instead of one omega"):
        evaluate_population(pop, 1, omega=1.0)

    careful = f"{env}:collision=300,offroad=300"
    weighted = PopulationData([env, careful], [data, load_highway(careful, highway_data["path"])])
    np.testing.assert_array_equal(weighted.shared["term_rewards"], data["term_rewards"])
    assert not np.array_equal(weighted.rewards[:, 0], weighted.rewards[:, 1])
    dip = train_population(str(tmp_path / "dipole"), [(env, 0), (careful, 0)], weighted, "dipole",
                           get_agent("dipole")[1](**TINY), settings, **quiet)
    with pytest.raises(UsageError, match="agent 'dipole' has no reward terms"):
        dip.sample_actions(batch, keys, term_weights="safety=4")


def test_term_weights_on_the_command_line(highway_data, tmp_path, capsys):
    """`dipole train --agent dipole-terms` on driving data, then `dipole eval --term-weights` over two settings: one
    table and one result file per setting, each row carrying its weights; --omega and unknown terms refused."""
    import json

    from dipole.cli import main

    run = str(tmp_path / "run")
    main(["train", "--agent", "dipole-terms", "--env", "highway-fast-v0", "--dataset", highway_data["path"],
          "--preset", "tiny", "--steps", "20", "--eval-every", "0", "--eval-episodes", "0", "--run-dir", run])
    capsys.readouterr()
    main(["eval", "--checkpoint", run, "--term-weights", "safety=4", "speed=0,lane=2", "--num-candidates", "1", "4",
          "--episodes", "1", "--out", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    assert "term weights speed=1, safety=4, lane=1:" in out and "term weights speed=0, safety=1, lane=2:" in out
    files = sorted((tmp_path / "eval").glob("*.json"))
    assert len(files) == 2
    rows = [json.loads(f.read_text()) for f in files]
    assert [r["term_weights"] for r in rows[0]] == [{"speed": 1.0, "safety": 4.0, "lane": 1.0}] * 2
    assert [r["term_weights"] for r in rows[1]] == [{"speed": 0.0, "safety": 1.0, "lane": 2.0}] * 2
    assert [(r["num_candidates"], r["selection"]) for r in rows[1]] == [(1, None), (4, "argmax")]
    with pytest.raises(SystemExit, match=r"^error: term weight for 'comfort': this agent's terms are"):
        main(["eval", "--checkpoint", run, "--term-weights", "comfort=1", "--episodes", "1"])
    with pytest.raises(SystemExit, match="^error: agent 'dipole-terms' has no greediness knob.*use --term-weights"):
        main(["eval", "--checkpoint", run, "--omega", "2", "--episodes", "1"])


def test_tradeoff_table_states_the_goal_from_the_numbers():
    """benchmarks/highway_tradeoff.py's table: mean and std over seeds, failures per seed, and the goal read off the
    rows (as safe as `normal` within one episode, as fast as `assertive`; the inference-time point that beats each
    retrained one)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("highway_tradeoff", os.path.join(
        os.path.dirname(__file__), "..", "benchmarks", "highway_tradeoff.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def row(fail, speed, episodes=50):
        return {"episodes": episodes, "failure": fail, "collision": fail, "offroad": 0.0, "mean_speed": speed,
                "return": 10.0, "return_speed": 12.0, "return_collision": -100.0 * fail, "return_offroad": 0.0,
                "return_lane": -2.0}

    results = {"settings": {"stage": "final", "data_seed": 0, "data_episodes": 500, "seeds": [0, 1], "episodes": 50,
                            "steps": 100, "preset": "small", "lr": 1e-3},
               "evals": {"terms: speed=1,safety=4,lane=1": {"0": row(0.02, 23.4), "1": row(0.0, 23.0)},
                         "terms: speed=1,safety=0,lane=1": {"0": row(0.3, 25.0), "1": row(0.2, 25.0)},
                         "retrained: collision=10,offroad=10 (headline)": {"0": row(0.1, 22.0), "1": row(0.1, 22.4)},
                         "driver: assertive": {"0": row(0.0, 23.1), "1": row(0.0, 22.9)},
                         "driver: normal": {"0": row(0.0, 21.4), "1": row(0.0, 21.6)}}}
    md = bench.table(results)
    lines = md.splitlines()
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| policy")]
    assert [r.split(" | ")[0] for r in rows] == ["| driver: normal", "| driver: assertive",
                                                 "| terms: speed=1,safety=0,lane=1", "| terms: speed=1,safety=4,lane=1",
                                                 "| retrained: collision=10,offroad=10 (headline)"]
    assert "| terms: speed=1,safety=4,lane=1 | 1.0 ± 1.0 | 1/0 |" in md and "| 23.20 ± 0.20 |" in md
    # 1% failures is within one episode of 100 of the normal driver's 0%, and 23.2 m/s >= the assertive 23.0
    assert "reached by terms: speed=1,safety=4,lane=1." in md
    assert ("retrained: collision=10,offroad=10 (headline) (10.0%, 22.20 m/s): the fastest inference-time point that "
            "fails no more often is terms: speed=1,safety=4,lane=1 at 23.20 m/s (+1.00); at its speed the "
            "inference-time front (two settings mixed per episode) fails in 1.0% (-9.0 points).") in md
    # the front between measured points: a per-episode mixture of two settings, linear in failure and speed
    assert bench.front_failure_at([(0.0, 20.0), (0.5, 30.0)], 25.0) == pytest.approx(0.25)
    assert bench.front_failure_at([(0.0, 20.0), (0.5, 30.0), (0.1, 26.0)], 25.0) == pytest.approx(0.1 * 5 / 6)
    assert bench.front_failure_at([(0.0, 20.0), (0.5, 30.0)], 19.0) == 0.0
    assert bench.front_failure_at([(0.0, 20.0), (0.5, 30.0)], 31.0) is None
    results["evals"]["terms: speed=1,safety=4,lane=1"]["1"] = row(0.04, 23.0)  # 3% > 0% + one episode in 100
    assert "not reached" in bench.table(results)
    results["settings"]["stage"] = "dev"  # the dev rule: the fastest point within one episode of `normal`'s rate
    assert "Dev rule picks **terms: speed=1,safety=0,lane=1**" not in bench.table(results)
    results["evals"]["terms: speed=1,safety=4,lane=1"]["1"] = row(0.0, 23.0)
    assert ("Dev rule picks **terms: speed=1,safety=4,lane=1** (1.0% failures, 23.20 m/s): the fastest of 1 point(s)"
            in bench.table(results))
    del results["evals"]["terms: speed=1,safety=4,lane=1"]
    assert ("Dev rule picks **terms: speed=1,safety=0,lane=1** (25.0% failures, 25.00 m/s): no point fails in at "
            "most 1.0%" in bench.table(results))
