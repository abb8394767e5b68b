"""The report scripts of benchmarks/ on made-up inputs whose answers are known in closed form."""

import json
import os

import numpy as np
import pytest
from conftest import benchmark_script as _script



def test_discounted_return_cuts_at_episode_ends():
    scale = _script("critic_scale")
    out = scale.discounted_return(np.array([-1.0, -1.0, -1.0, -1.0, 0.0]), np.array([1.0, 1.0, 1.0, 1.0, 0.0]),
                                  np.array([0, 0, 1, 0, 1]), gamma=0.5)
    # episode 1: -1 - 0.5 - 0.25, -1 - 0.5, -1; episode 2: -1 + 0.5 * 0 (the terminal row's reward 0, mask 0)
    np.testing.assert_allclose(out, [-1.75, -1.5, -1.0, -1.0, 0.0])


def _bench(folder, scores, setting, seeds=(0, 1, 2, 3)):
    tasks = sorted(scores)
    agents = {"dipole": {
        "tasks": {t: [float(np.mean(scores[t])), float(np.std(scores[t]))] for t in tasks},
        "category": [float(np.mean([np.mean(scores[t]) for t in tasks])), 0.0],
        "omega_sweep": [{"omega": 0.0, "num_candidates": 1, "selection": None, "score": [1.0, 0.5]}]}}
    os.makedirs(folder)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"agents": agents, "category": "made-up", "suite": "made-up", "steps": 10, "preset": "tiny",
                   "eval_episodes": 10, "metric": "success"}, f)
    for t in tasks:
        for i, s in enumerate(seeds):
            run = os.path.join(folder, "runs", t, "dipole", f"seed{s}")
            os.makedirs(run)
            with open(os.path.join(run, "result.json"), "w") as f:
                json.dump({"seed": s, "task": t, "headline": {"success": scores[t][i] / 100.0, **setting}}, f)


def test_critic_forms_statistics_in_closed_form(tmp_path):
    forms = _script("critic_forms")
    argmax = {"omega": 0.0, "num_candidates": 32, "selection": "argmax"}
    _bench(tmp_path / "a", {"t1": [100.0] * 4, "t2": [0.0] * 4}, argmax)
    _bench(tmp_path / "b", {"t1": [0.0] * 4, "t2": [0.0] * 4}, {**argmax, "selection": "tilt"})
    text, data = forms.report({"a": forms._load(str(tmp_path / "a")), "b": forms._load(str(tmp_path / "b"))})
    stats = data["stats"]
    # a: four runs at 100 and four at 0, so the middle half is two of each: IQM 50 = mean; b: 0 everywhere
    assert stats["iqm"]["a"][0] == pytest.approx(50.0) and stats["mean"]["a"][0] == pytest.approx(50.0)
    assert tuple(stats["iqm"]["b"]) == (0.0, 0.0, 0.0)
    # P(a > b): 1 on t1, ties count one half on t2, averaged over tasks
    assert stats["improvement"]["b"][0] == pytest.approx(0.75)
    assert "| a (omega 0, K 32 argmax) | b (omega 0, K 32 tilt) |" in text
    assert "| 0 | 1 | - | 1.0 ± 0.5 | 1.0 ± 0.5 |" in text


def test_critic_forms_refuses_different_seeds(tmp_path):
    forms = _script("critic_forms")
    setting = {"omega": 0.0, "num_candidates": 1, "selection": None}
    _bench(tmp_path / "a", {"t1": [0.0] * 4}, setting)
    _bench(tmp_path / "b", {"t1": [0.0] * 3}, setting, seeds=(0, 1, 2))
    with pytest.raises(SystemExit, match=r"error: the folders hold different seeds \(\[0, 1, 2, 3\] against"):
        forms.report({"a": forms._load(str(tmp_path / "a")), "b": forms._load(str(tmp_path / "b"))})


def test_pilot_curves_rank_a_step_only_with_room_and_a_gap(tmp_path):
    """The pilot's rule on made-up curves: 2 seeds x 20 episodes = 40 per agent; IQL 50 % against BC 10 %: gap 40,
    interval 1.96 sqrt(.25/40 + .09/40) = 18.07 points, so the step ranks; at 10k IQL's 15 % is below the range."""
    pilot = _script("pilot_curves")
    task = "scene-play-singletask-task1-v0"

    def curve(points):
        return {"success": {"steps": [10_000, 20_000], "category": points,
                            "tasks": {task: [[m, 0.0] for m, _ in points]}}}

    summary = {"suite": "pilot-scene", "category": "scene-play-v0", "seeds": 2, "eval_episodes": 20,
               "agents": {"bc": {"tasks": {task: [10, 0]}, "curves": curve([[5.0, 0.0], [10.0, 0.0]])},
                          "iql": {"tasks": {task: [50, 0]}, "curves": curve([[15.0, 0.0], [50.0, 0.0]])},
                          "ifql": {"tasks": {task: [40, 0]}, "curves": curve([[12.0, 0.0], [40.0, 0.0]])}}}
    rows = pilot.ranking_steps(summary)
    assert [(r["step"], r["best"], r["ranks"]) for r in rows] == [(10_000, "iql", False), (20_000, "iql", True)]
    assert rows[1]["bc_gap"] == 40.0 and rows[1]["gap_interval"] == pytest.approx(18.1, abs=0.05)
    os.makedirs(tmp_path / "b")
    with open(tmp_path / "b" / "results.json", "w") as f:
        json.dump(summary, f)
    pilot.main([str(tmp_path / "b"), "--png", str(tmp_path / "p.png"), "--json", str(tmp_path / "p.json")])
    assert (tmp_path / "p.png").stat().st_size > 0
    assert [r["ranks"] for r in json.load(open(tmp_path / "p.json"))["rows"]] == [False, True]
    with pytest.raises(SystemExit, match="results.json not found"):
        pilot.main([str(tmp_path / "nowhere")])


def test_pooled_stats_pool_the_tasks_of_several_bench_folders(tmp_path):
    """Two made-up bench folders (scene task 1, puzzle task 1), seeds 0-2: the pooled matrix of each entry is its
    scores per (seed, task) in folder order, seed 2 of BC dropped (its puzzle run did not finish); the statistics
    are rliable's on exactly those matrices, and a sweep row (DIPOLE at omega 0, K 1) enters as an entry of its own."""
    import numpy as np

    from dipole.bench.stats import rliable_stats

    pooled = _script("pooled_stats")
    made = {"scene": ("scene-play-singletask-task1-v0", {"bc": [10, 0, 20], "dipole": [60, 70, 50]},
                      [80, 90, 100]),
            "puzzle": ("puzzle-3x3-play-singletask-task1-v0", {"bc": [0, 30, None], "dipole": [40, 20, 30]},
                       [10, 0, 20])}
    for name, (task, heads, k1) in made.items():
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "bench.json", "w") as f:
            json.dump({"suite.tasks": [task], "suite.source": "ogbench"}, f)
        for agent, scores in heads.items():
            for seed, s in enumerate(scores):
                if s is None:
                    continue
                sweep = ([{"omega": 0.0, "num_candidates": 1, "selection": None, "success": k1[seed] / 100},
                          {"omega": 0.0, "num_candidates": 32, "selection": "argmax", "success": s / 100}]
                         if agent == "dipole" else None)
                run = tmp_path / name / "runs" / task / agent / f"seed{seed}"
                os.makedirs(run)
                with open(run / "result.json", "w") as f:
                    json.dump({"seed": seed, "headline": {"success": s / 100}, "omega_sweep": sweep}, f)
    out = tmp_path / "pooled"
    pooled.main([str(tmp_path / "scene"), str(tmp_path / "puzzle"), "--agents", "bc,dipole", "--row", "dipole:0:1",
                 "--out", str(out), "--reps", "200"])
    want = {"bc": np.array([[10, 0], [0, 30]], float), "dipole": np.array([[60, 40], [70, 20], [50, 30]], float),
            "dipole[omega=0,K=1]": np.array([[80, 10], [90, 0], [100, 20]], float)}
    tasks = ["scene-play-singletask-task1-v0", "puzzle-3x3-play-singletask-task1-v0"]
    expected = rliable_stats(want, tasks, tau=np.linspace(0.0, 100.0, 51), reps=200)
    got = json.load(open(out / "stats.json"))
    assert got["seeds"] == {"bc": 2, "dipole": 3, "dipole[omega=0,K=1]": 3}
    for key in ("runs", "iqm", "mean", "per_task", "improvement", "iqm_difference", "profile"):
        assert json.loads(json.dumps(expected[key])) == got[key], key
    assert got["reference"] == "dipole" and got["iqm"]["dipole[omega=0,K=1]"][0] == pytest.approx(50.0)
    assert "dipole[omega=0,K=1]" in open(out / "stats.md").read() and (out / "stats.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="repeats tasks"):
        pooled.main([str(tmp_path / "scene"), str(tmp_path / "scene"), "--agents", "bc", "--out", str(out)])
    with pytest.raises(SystemExit, match="write AGENT:OMEGA:K"):
        pooled.main([str(tmp_path / "scene"), "--agents", "bc", "--row", "dipole", "--out", str(out)])
