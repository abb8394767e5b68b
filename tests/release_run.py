"""Run folders written by a released dipole, kept in tests/data/ so that every later version is checked to resume them.

`--write DIR` trains, with the installed dipole, the DIPOLE run and the population of two of
tests/loop_fingerprint.py (same data, tiny networks, seeds and settings) with a checkpoint every 30 updates, then
leaves each folder as a kill after the step-30 checkpoint would (the later checkpoint, the final agent and the metrics
rows past step 30 removed). tests/data/release-0.3.0 was written by dipole 0.3.0 (commit 476acde):

    git worktree add /tmp/dipole-0.3.0 476acde
    PYTHONPATH=/tmp/dipole-0.3.0 python tests/release_run.py --write tests/data/release-0.3.0

`resume(DIR, work)` continues both to 60 updates with the code at hand; tests/test_release_run.py checks that they
end where an uninterrupted run of the same settings ends (tests/loop_fingerprint.json).
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import shutil
import sys
import tempfile

import loop_fingerprint as fp

HALF = fp.STEPS // 2


def _setup(train_path: str):
    from dipole.agents import get_agent
    from dipole.data.ogbench import load_ogbench
    from dipole.runners.offline import TrainSettings

    config = get_agent("dipole")[1]().replace(**fp.TINY, **fp.AGENTS["dipole"])
    data = {}
    for task in fp.TASKS:
        env, train_ds, val_ds = load_ogbench(task, dataset_path=train_path)
        env.close()
        data[task] = (train_ds, val_ds)

    def settings(steps, **kw):
        return TrainSettings(steps=steps, log_every=HALF, eval_every=0, eval_episodes=0, save_every=HALF,
                             progress=False, **kw)

    return config, data, settings


def train_both(train_path: str, out: str, steps: int, resume: bool):
    """The fingerprint's single run and population of two in `out`/single and `out`/population -> (agent, pop)."""
    import dipole

    config, data, settings = _setup(train_path)
    quiet = dict(log=lambda *a: None)
    agent = dipole.train(os.path.join(out, "single"), fp.TASKS[1], data[fp.TASKS[1]][0], "dipole", config,
                         settings(steps, seed=1), resume=resume, val_dataset=data[fp.TASKS[1]][1], **quiet)
    try:  # where the population loop lives: dipole.runners.loop since 0.4.0, dipole.runners.population before
        from dipole.runners.loop import train_population
    except ImportError:
        from dipole.runners.population import train_population
    from dipole.runners.population import Member, PopulationData

    members = [Member(fp.TASKS[0], 0), Member(fp.TASKS[1], 1)]
    pop = train_population(os.path.join(out, "population"), members,
                           PopulationData(list(fp.TASKS), [data[t][0] for t in fp.TASKS]), "dipole", config,
                           settings(steps), resume=resume,
                           val_data=PopulationData(list(fp.TASKS), [data[t][1] for t in fp.TASKS]), **quiet)
    return agent, pop


def _as_killed(run: str) -> None:
    """Leave `run` as a kill right after its step-HALF checkpoint would."""
    keep = f"ckpt-{HALF:08d}"
    for path in glob.glob(os.path.join(run, "checkpoints", "*")):
        if not os.path.basename(path).startswith(keep):
            os.remove(path)
    for name in os.listdir(run):
        path = os.path.join(run, name)
        if name not in ("checkpoints", "config.json", "metrics.csv"):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    metrics = os.path.join(run, "metrics.csv")
    with open(metrics) as f:
        rows = list(csv.reader(f))
    with open(metrics, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if int(r[rows[0].index("step")]) <= HALF])


def write(out: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        train_both(fp.make_data(os.path.join(work, "data")), out, fp.STEPS, resume=False)
    for kind in ("single", "population"):
        _as_killed(os.path.join(out, kind))
    print(f"wrote {out}: single and population, each at its step-{HALF} checkpoint of {fp.STEPS}")


def resume(folder: str, work: str, train_path: str):
    """Copy `folder`'s runs into `work` and resume both to the fingerprint's STEPS -> (agent, population)."""
    for kind in ("single", "population"):
        shutil.copytree(os.path.join(folder, kind), os.path.join(work, kind))
    return train_both(train_path, work, fp.STEPS, resume=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", required=True, metavar="DIR")
    write(p.parse_args().write)
    sys.exit(0)
