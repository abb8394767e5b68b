"""The bench's aggregate statistics (rliable): numbers computed by hand on small made-up score matrices."""

import dataclasses
import json
import os

import numpy as np
import pytest

from dipole.bench.stats import reference_agent, rliable_stats, score_matrices, stats_markdown

# runs x tasks, in percent
A = np.array([[10, 40], [20, 50], [30, 60], [90, 0]], float)
B = np.array([[0, 40], [10, 40], [20, 40], [30, 40]], float)
TASKS = ["t1", "t2"]
FAST = dict(reps=300)


def test_point_estimates_by_hand():
    s = rliable_stats({"dipole": A, "bc": B}, TASKS, tau=np.array([15.0, 25.0, 35.0, 45.0]), **FAST)
    # IQM: the 8 values sorted, the middle 4: A 20 30 40 50, B 20 30 40 40
    assert s["iqm"]["dipole"][0] == pytest.approx(35.0) and s["iqm"]["bc"][0] == pytest.approx(32.5)
    assert s["mean"]["dipole"][0] == pytest.approx(37.5) and s["mean"]["bc"][0] == pytest.approx(27.5)
    # per task, the IQM of 4 runs is the mean of the middle two: A task 1: 20, 30
    assert s["per_task"]["t1"]["iqm"]["dipole"][0] == pytest.approx(25.0)
    assert s["per_task"]["t2"]["mean"]["bc"][0] == pytest.approx(40.0)
    # P(A > B) per task, ties counted half: task 1 (1.5 + 2.5 + 3.5 + 4) / 16, task 2 (2 + 4 + 4 + 0) / 16
    assert s["reference"] == "dipole" and list(s["improvement"]) == ["bc"]
    assert s["improvement"]["bc"][0] == pytest.approx((11.5 / 16 + 10 / 16) / 2)
    assert s["iqm_difference"]["bc"][0] == pytest.approx(2.5)
    # performance profiles: the share of the 8 runs x tasks above tau
    assert s["profile"]["dipole"]["share"] == pytest.approx([6 / 8, 5 / 8, 4 / 8, 3 / 8])
    assert s["profile"]["bc"]["share"] == pytest.approx([6 / 8, 5 / 8, 4 / 8, 0.0])
    for key in ("iqm", "mean"):
        for a in ("dipole", "bc"):
            point, lo, hi = s[key][a]
            assert lo <= point <= hi
    md = stats_markdown(s, "success rate (%)")
    assert "| **IQM** | **35.0 [" in md and "| bc | 0.67 [" in md and "runs (seeds with every task finished): " \
        "dipole 4, bc 4" in md


def test_intervals_by_hand():
    # One task, 3 runs: each extreme mean (all three draws the same run) has probability 1/27 = 3.7 % > 2.5 %, so
    # the 95 % percentile interval of the mean is exactly [min, max] of the runs.
    s = rliable_stats({"x": np.array([[20.0], [50.0], [90.0]])}, ["t"], reps=5000)
    assert s["mean"]["x"] == pytest.approx((160 / 3, 20.0, 90.0))
    # Stratified: runs are resampled within each task, so with every run of a task equal the aggregate cannot move
    # (a bootstrap over all runs x tasks would spread it between 10 and 50).
    s = rliable_stats({"x": np.array([[10.0, 50.0]] * 4)}, ["t1", "t2"], **FAST)
    assert s["mean"]["x"] == pytest.approx((30.0, 30.0, 30.0))
    assert s["iqm"]["x"] == pytest.approx((30.0, 30.0, 30.0))
    # every run of X above every run of Y on each task: P(improvement) is 1 in every replication; identical agents
    # (each resampled on its own): 1/2 at the point estimate
    s = rliable_stats({"dipole": A + 100, "below": A}, TASKS, **FAST)
    assert s["improvement"]["below"] == pytest.approx((1.0, 1.0, 1.0))
    assert s["iqm_difference"]["below"][0] == pytest.approx(100.0)
    s = rliable_stats({"dipole": A, "twin": A.copy()}, TASKS, **FAST)
    assert s["improvement"]["twin"][0] == pytest.approx(0.5) and s["iqm_difference"]["twin"][0] == 0.0


def test_same_runs_give_the_same_report():
    a = rliable_stats({"dipole": A, "bc": B}, TASKS, **FAST)
    b = rliable_stats({"dipole": A, "bc": B}, TASKS, **FAST)
    assert a == b


def test_score_matrices_keep_complete_seeds_and_reference():
    m = score_matrices({"dipole": {0: [1.0, 2.0], 1: [3.0], 2: [5.0, 6.0]}, "bc": {0: [1.0]}}, 2)
    assert list(m) == ["dipole"] and m["dipole"].tolist() == [[1.0, 2.0], [5.0, 6.0]]
    assert reference_agent(["bc", "iql", "dipole[critic=iql]", "dipole"]) == "dipole[critic=iql]"
    assert reference_agent(["bc", "iql"]) == "bc"
    with pytest.raises(ValueError, match=r"scores of x must have shape \(runs, 2\), got \(3, 1\)"):
        rliable_stats({"x": np.zeros((3, 1))}, TASKS)
    assert rliable_stats({}, TASKS) == {}
    assert "no aggregate statistics yet" in stats_markdown({}, "success rate (%)")


def test_bench_writes_the_statistics_of_its_finished_runs(tmp_path, monkeypatch):
    """Made-up result.json files in a bench folder: `dipole bench --report` writes stats.json, stats.png and the
    tables in results.md from exactly those scores."""
    from dipole.bench import runner

    tasks = ("pointmaze-medium-navigate-singletask-task1-v0", "pointmaze-medium-navigate-singletask-task2-v0")
    suite = dataclasses.replace(runner.SUITES["smoke"], name="made-up", tasks=tasks)
    monkeypatch.setitem(runner.SUITES, "made-up", suite)
    for agent, m in (("dipole", A), ("bc", B)):
        for j, task in enumerate(tasks):
            config = runner._config(suite, agent, task, {}).to_dict()
            for seed in range(4):
                d = runner._run_dir(str(tmp_path), task, agent, seed)
                os.makedirs(d)
                headline = {"success": m[seed, j] / 100, "return": 0.0, "omega": None, "num_candidates": None}
                if agent == "dipole":  # manipulation tasks also report the share of subgoals held at the end
                    headline["progress"] = (seed + 1) / 8
                    # a learning curve: success at 50 % of its final value at step 100, then the final value
                    curve = [{"step": 100, "success": m[seed, j] / 200, "progress": 0.0},
                             {"step": 200, "success": m[seed, j] / 100, "progress": (seed + 1) / 8}]
                    headline_curve = {"curve": curve}
                else:
                    headline_curve = {}
                json.dump({"config": config, "headline": headline, "omega_sweep": None, **headline_curve},
                          open(os.path.join(d, "result.json"), "w"))
    runner.run_bench("made-up", ["dipole", "bc"], 4, out_dir=str(tmp_path), report_only=True, log=lambda *_: 0)
    s = json.load(open(tmp_path / "stats.json"))
    assert s["tasks"] == list(tasks) and s["runs"] == {"dipole": 4, "bc": 4}
    assert s["iqm"]["dipole"][0] == pytest.approx(35.0) and s["mean"]["bc"][0] == pytest.approx(27.5)
    assert s["improvement"]["bc"][0] == pytest.approx((11.5 / 16 + 10 / 16) / 2)
    assert s["profile"]["tau"][:3] == pytest.approx([0.0, 2.0, 4.0]) and len(s["profile"]["tau"]) == 51
    md = open(tmp_path / "results.md").read()
    assert "mean ± std over 4 seeds" in md and "| **IQM** | **35.0 [" in md
    # the progress table has the agents that report it: 12.5, 25, 37.5, 50 % -> 31.25 ± 13.98
    assert f"| {tasks[1]} | 31.2 ± 14.0 |" in md and "Subgoal progress" in md
    assert (tmp_path / "stats.png").stat().st_size > 0
    # curves: the category is the task average per seed, then mean ± std over seeds (A's row means 25, 35, 45, 45)
    curves = json.load(open(tmp_path / "results.json"))["agents"]["dipole"]["curves"]
    per_seed = A.mean(axis=1)
    assert curves["success"]["steps"] == [100, 200]
    assert curves["success"]["category"][1] == pytest.approx([per_seed.mean(), per_seed.std()])
    assert curves["success"]["category"][0] == pytest.approx([per_seed.mean() / 2, per_seed.std() / 2])
    assert curves["progress"]["tasks"][tasks[0]][0] == [0.0, 0.0]
    assert "bc" not in [a for a, v in json.load(open(tmp_path / "results.json"))["agents"].items() if v["curves"]]
    assert f"| 200 | {per_seed.mean():.1f} ± {per_seed.std():.1f} |" in md and "subgoal progress (%)" in md
    assert (tmp_path / "curves.png").stat().st_size > 0
