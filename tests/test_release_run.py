"""A run folder written by dipole 0.3.0 (tests/data/release-0.3.0: a single run and a population of two, each left
as a kill after its step-30 checkpoint would leave it; see tests/release_run.py) resumes under the code at hand and
ends where an uninterrupted run of the same settings ends: the fingerprints of tests/loop_fingerprint.json."""

import json
import os

import loop_fingerprint as fp
import release_run

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "release-0.3.0")


def test_release_0_3_0_run_folders_resume_to_the_uninterrupted_fingerprints(tmp_path, pointmaze_files):
    work = str(tmp_path / "runs")
    agent, pop = release_run.resume(FOLDER, work, pointmaze_files["train_path"])
    want = json.load(open(fp.FILE))
    obs, key = fp.probe(pointmaze_files["train_path"])
    got = {"dipole/single": fp.solo_print(agent, os.path.join(work, "single"), obs, key),
           "dipole/population": fp.population_print(pop, os.path.join(work, "population"), obs, key)}
    for name, value in got.items():
        want[name].pop("eval")
        assert fp.compare(want[name], value, name) == []
    # the folders were resumed, not retrained: the metrics keep 0.3.0's step-30 rows and add step 60
    with open(os.path.join(work, "single", "metrics.csv")) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["30", "60"]
