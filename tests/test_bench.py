"""The benchmark runner on its smoke suite: every run, resumability, aggregation."""

import json
import os

import numpy as np
import pytest
from conftest import copy_bench

from dipole.bench.suites import SUITES
from dipole.cli import main


def test_smoke_suite_runs_resumes_and_aggregates(smoke_bench, tmp_path, capsys):
    out = copy_bench(smoke_bench, tmp_path / "bench")  # `dipole bench --suite smoke --agents dipole,bc --seeds 2`
    task = SUITES["smoke"].tasks[0]
    results = json.load(open(os.path.join(out, "results.json")))
    per_seed = [json.load(open(os.path.join(out, "runs", task, "dipole", f"seed{s}", "result.json"))) for s in (0, 1)]
    scores = [100 * r["headline"]["success"] for r in per_seed]
    assert results["agents"]["dipole"]["tasks"][task] == [float(np.mean(scores)), float(np.std(scores))]
    # headline is evaluated at the config's omega, the sweep separately at each omega and K
    assert all(r["headline"]["omega"] == r["config"]["omega"] for r in per_seed)
    sweep = results["agents"]["dipole"]["omega_sweep"]
    assert [(r["omega"], r["num_candidates"], r["selection"]) for r in sweep] == [
        (0.0, 1, None), (0.0, 2, "argmax"), (0.0, 2, "tilt")]
    # the headline (omega 0, K 2, argmax: the authors' sampling, pinned by the smoke suite) is the sweep's own row,
    # evaluated once
    assert all(r["headline"] == r["omega_sweep"][1] for r in per_seed)
    # agents without a greediness knob get a headline only, no sweep
    bc = json.load(open(os.path.join(out, "runs", task, "bc", "seed0", "result.json")))
    assert bc["omega_sweep"] is None and bc["headline"]["omega"] is None
    assert results["agents"]["bc"]["omega_sweep"] == []
    assert os.path.exists(os.path.join(out, "results.png")) and os.path.exists(os.path.join(out, "results.md"))

    # a second call finds every run finished and only re-aggregates
    stamp = os.path.getmtime(os.path.join(out, "runs", task, "dipole", "seed0", "result.json"))
    os.unlink(os.path.join(out, "runs", task, "dipole", "seed1", "result.json"))
    main(["bench", "--suite", "smoke", "--agents", "dipole,bc", "--seeds", "2", "--out", out, "--workers", "1"])
    text = capsys.readouterr().out
    assert os.path.getmtime(os.path.join(out, "runs", task, "dipole", "seed0", "result.json")) == stamp
    again = json.load(open(os.path.join(out, "runs", task, "dipole", "seed1", "result.json")))
    assert again["headline"] == per_seed[1]["headline"]  # evaluated again from the trained population
    assert "evaluating 1 finished member(s) of the population" in text
    assert "| **pointmaze-medium-navigate (1-task average)** |" in text and "| task | dipole | bc |" in text
    assert json.load(open(os.path.join(out, "results.json")))["agents"] == results["agents"]


def test_population_bench_gives_the_results_of_runs_trained_as_populations_of_one(smoke_bench, tmp_path):
    """Each (task, seed) of a population ends where the same run trained alone (--no-population: a population of
    one, on the unbatched path of a single run) ends, so the tables agree (the population's evaluation environments
    stepped by 2 worker processes, the runs' in this process)."""
    from dipole.bench.runner import run_bench

    solo = run_bench("smoke", ["dipole"], 2, out_dir=str(tmp_path / "solo"), population=False, workers=1,
                     log=lambda *_: 0)
    task = SUITES["smoke"].tasks[0]
    for seed in (0, 1):
        a, b = (json.load(open(folder / "runs" / task / "dipole" / f"seed{seed}" / "result.json"))
                for folder in (smoke_bench, tmp_path / "solo"))
        assert os.path.basename(a["population"]).startswith("dipole-2-")  # both seeds in one program
        assert os.path.basename(b["population"]).startswith("dipole-1-")  # --no-population: a program per run
        for x, y in zip([a["headline"], *a["omega_sweep"]], [b["headline"], *b["omega_sweep"]]):
            assert (x["omega"], x["num_candidates"], x["success"]) == (y["omega"], y["num_candidates"], y["success"])
            assert x["return"] == pytest.approx(y["return"], abs=1e-3)
    pop = json.load(open(smoke_bench / "results.json"))
    assert pop["agents"]["dipole"]["tasks"] == json.loads(json.dumps(solo["agents"]["dipole"]["tasks"]))


def test_an_agent_without_omega_sweeps_its_candidates(tmp_path):
    """IFQL has no greediness knob but picks among K candidates: the bench evaluates its K grid (omega None), the
    headline being the grid's row at the config's K, and tabulates it as a candidate sweep."""
    from dipole.bench.runner import run_bench

    summary = run_bench("smoke", ["ifql"], 1, out_dir=str(tmp_path), workers=1, log=lambda *_: 0)
    r = json.load(open(tmp_path / "runs" / SUITES["smoke"].tasks[0] / "ifql" / "seed0" / "result.json"))
    assert [(x["omega"], x["num_candidates"], x["selection"]) for x in r["omega_sweep"]] == [
        (None, 1, None), (None, 2, "argmax")]
    assert r["headline"] == r["omega_sweep"][1]  # the smoke suite's K 2: evaluated once
    assert [(x["omega"], x["num_candidates"]) for x in summary["agents"]["ifql"]["omega_sweep"]] == [(None, 1),
                                                                                                  (None, 2)]
    md = open(tmp_path / "results.md").read()
    assert "Candidate sweep for `ifql`" in md and "\n| - | 2 | argmax | " in md


def test_report_only_marks_unfinished_runs(tmp_path):
    from dipole.bench.runner import run_bench

    summary = run_bench("smoke", ["dipole", "bc"], 2, out_dir=str(tmp_path), report_only=True, log=lambda *_: 0)
    assert summary["missing"] == 4  # 1 task x 2 agents x 2 seeds, none run
    assert summary["agents"]["dipole"]["category"] is None
    md = open(tmp_path / "results.md").read()
    assert "| — | — |" in md and "4 run(s) of this suite have not finished" in md
    assert not (tmp_path / "data").exists()  # a report makes no data


def test_dmc_smoke_suite_scores_by_return(tmp_path, monkeypatch):
    from dipole.bench import runner
    from dipole.bench.runner import SUITES, run_bench

    suite = SUITES["smoke-dmc"]
    assert suite.metric == "return" and SUITES["dmc-walker-mini"].tasks == (
        "dmc-walker-stand", "dmc-walker-walk", "dmc-walker-run")
    real, calls = runner.evaluate_population, []

    def recorded(*args, **kwargs):
        calls.append((kwargs["omega"], kwargs["num_candidates"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_population", recorded)
    summary = run_bench("smoke-dmc", ["dipole"], 1, out_dir=str(tmp_path), workers=1, log=lambda *_: 0)
    # the headline (DIPOLE's walker config: K 32, off this suite's K 1 sweep) is evaluated first, then the sweep
    assert calls == [(None, None), (0.0, 1), (2.0, 1)]
    r = json.load(open(tmp_path / "runs" / "dmc-walker-stand" / "dipole" / "seed0" / "result.json"))
    assert r["headline"]["success"] is None and r["headline"]["length"] == 1000
    assert list(summary["agents"]["dipole"]["tasks"]["dmc-walker-stand"]) == [r["headline"]["return"], 0.0]
    assert [row["omega"] for row in summary["agents"]["dipole"]["omega_sweep"]] == [0.0, 2.0]
    assert "episode return" in open(tmp_path / "results.md").read()
    assert (tmp_path / "data" / "walker-explore.npz").exists()


def test_a_bench_killed_during_its_sweep_keeps_the_settings_it_evaluated(tmp_path, monkeypatch):
    """A long sweep (scene-mini: 13-45 min per setting on 2 cores) evaluates the headline's setting first, and killed
    at its third setting resumes at that setting: the two it finished are read back, and the results equal those of
    a bench that was never killed."""
    from dipole.bench import runner

    said = []
    full = runner.run_bench("smoke", ["dipole"], 1, out_dir=str(tmp_path / "full"), log=said.append, workers=1)
    real, calls = runner.evaluate_population, []

    def killed_at_the_third(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append((kwargs["num_candidates"], kwargs["selection"]))
        return real(*args, **kwargs)

    out = str(tmp_path / "killed")
    monkeypatch.setattr(runner, "evaluate_population", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        runner.run_bench("smoke", ["dipole"], 1, out_dir=out, log=said.append, workers=1)
    # the headline (omega 0, K 2, argmax) first, then the sweep's order: K 1, K 2 tilt
    assert calls == [(2, "argmax"), (1, None)] and len(os.listdir(os.path.join(out, "populations", os.listdir(
        os.path.join(out, "populations"))[0], "eval"))) == 2

    def counted(*args, **kwargs):
        calls.append(("again", kwargs["omega"], kwargs["num_candidates"], kwargs["selection"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_population", counted)
    said.clear()
    again = runner.run_bench("smoke", ["dipole"], 1, out_dir=out, log=said.append, workers=1)
    assert calls[2:] == [("again", 0.0, 2, "tilt")]  # only the setting the kill interrupted
    assert sum("was evaluated by an earlier call" in s for s in said) == 2
    # no ETA from settings read back in no time
    assert [s.split("ETA ")[-1] for s in said if "evaluated setting" in s] == ["unknown", "unknown", "0 s"]
    task = SUITES["smoke"].tasks[0]
    a, b = (json.load(open(tmp_path / d / "runs" / task / "dipole" / "seed0" / "result.json"))
            for d in ("full", "killed"))
    for x, y in zip([a["headline"], *a["omega_sweep"]], [b["headline"], *b["omega_sweep"]]):
        assert (x["omega"], x["num_candidates"], x["selection"], x["success"]) == (
            y["omega"], y["num_candidates"], y["selection"], y["success"])
        assert x["return"] == pytest.approx(y["return"], abs=1e-3)
    assert again["agents"]["dipole"]["omega_sweep"] == full["agents"]["dipole"]["omega_sweep"]

    # saved rows are only used for the same evaluation: other episodes per member are evaluated afresh
    pop_dir = os.path.join(out, "populations", os.listdir(os.path.join(out, "populations"))[0])
    pop, _ = runner.load_population(runner.list_checkpoints(pop_dir)[-1])
    config = runner._config(SUITES["smoke"], "dipole", task, {})
    envs = runner.population_eval_envs(pop, 2)  # the suite evaluated 1 episode
    del calls[:]
    runner.saved_evaluation(pop, pop_dir, "dipole", config, envs, 2, (0.0, 1, None), said.append)
    assert calls == [("again", 0.0, 1, None)]
    runner.saved_evaluation(pop, pop_dir, "dipole", config, envs, 2, (0.0, 1, None), said.append)
    assert calls == [("again", 0.0, 1, None)]  # the same evaluation again: read back
    # but one made with another version of an environment package is evaluated afresh
    real_version = runner.importlib.metadata.version
    assert runner.eval_package_versions()["ogbench"] == real_version("ogbench")
    monkeypatch.setattr(runner.importlib.metadata, "version",
                        lambda name: "0.0.1" if name == "ogbench" else real_version(name))
    runner.saved_evaluation(pop, pop_dir, "dipole", config, envs, 2, (0.0, 1, None), said.append)
    assert calls == [("again", 0.0, 1, None)] * 2
    for e in (e for per in envs for e in per):
        e.close()


def test_a_suite_with_learning_curves_records_the_headline_while_training(tmp_path, monkeypatch):
    """eval_every: each member's result.json carries its curve (eval.csv of its population, headline setting); the
    last point is the headline evaluation itself (same members, keys and episodes), and the report tabulates and
    draws the curves."""
    import dataclasses

    from dipole.bench import runner

    suite = dataclasses.replace(SUITES["smoke"], name="smoke-curves", eval_every=100, eval_episodes=1,
                                sweep_candidates=(2,), first_seed=3)  # `--seeds 2` runs seeds 3 and 4
    monkeypatch.setitem(runner.SUITES, "smoke-curves", suite)
    summary = runner.run_bench("smoke-curves", ["dipole"], 2, out_dir=str(tmp_path), workers=1, log=lambda *_: 0)
    task = suite.tasks[0]
    for seed in (3, 4):
        r = json.load(open(tmp_path / "runs" / task / "dipole" / f"seed{seed}" / "result.json"))
        assert [p["step"] for p in r["curve"]] == [100, 200] and "progress" not in r["curve"][0]
        assert r["curve"][-1]["success"] == r["headline"]["success"]
        assert r["curve"][-1]["return"] == pytest.approx(r["headline"]["return"], abs=1e-4)
    curve = summary["agents"]["dipole"]["curves"]["success"]
    firsts = [100 * json.load(open(tmp_path / "runs" / task / "dipole" / f"seed{s}" / "result.json"))["curve"][0]
              ["success"] for s in (3, 4)]
    assert curve["steps"] == [100, 200] and curve["category"][0] == (float(np.mean(firsts)), float(np.std(firsts)))
    assert list(summary["agents"]["dipole"]["curves"]) == ["success", "return"]
    assert summary["seed_list"] == [3, 4] and not (tmp_path / "runs" / task / "dipole" / "seed0").exists()
    md = open(tmp_path / "results.md").read()
    assert "mean ± std over 2 seeds (3, 4)" in md
    assert "Learning curves: category average success rate (%)" in md and "| 100 | " in md
    assert (tmp_path / "curves.png").stat().st_size > 0
