"""Benchmark suites: which tasks, how much data, how long to train, how many evaluation episodes.

OGBench suites are scored by success rate (%), averaged over a category's 5 single tasks as OGBench reports; DMC
suites by episode return. Paper-scale suites are for a GPU; `*-mini` suites fit 2 CPU cores; `smoke*` are for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dipole.envs.dmc import DOMAINS


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: str  # OGBench dataset to generate (or find) for every task of the suite
    tasks: tuple  # OGBench single-task names
    episodes: int | None  # dataset size in episodes (None: the published size)
    steps: int
    preset: str
    eval_episodes: int
    overrides: dict = field(default_factory=dict)  # config overrides for every agent that has the field
    sweep_omegas: tuple = (0.0, 0.5, 1.0, 2.0, 4.0)
    sweep_candidates: tuple = (1, 32)
    sweep_selections: tuple = ("argmax", "tilt")  # rules evaluated at each K > 1 (agents without 'tilt' skip it)
    log_every: int = 1000
    data_dir: str | None = None  # None: <out>/data; the paper-scale suites use ~/.ogbench/data
    source: str = "ogbench"  # 'ogbench' (an OGBench dataset), 'dmc' (a DMC domain) or 'highway' (driver data)
    data_steps: int | None = None  # dmc: exploratory transitions to collect
    role: str = ""  # 'development' (rules may be studied and chosen here) or 'test' (run once, rules frozen before)
    stats_reps: int = 10_000  # bootstrap replications of the aggregate statistics (dipole.bench.stats)
    eval_every: int = 0  # > 0: also evaluate the headline setting every so many updates (learning curves)
    first_seed: int = 0  # `--seeds N` runs seeds first_seed .. first_seed + N - 1 (a test suite apart from a pilot)

    def seed_range(self, seeds: int) -> range:
        return range(self.first_seed, self.first_seed + seeds)

    @property
    def category(self) -> str:
        return f"dmc-{self.dataset}" if self.source == "dmc" else self.dataset.removesuffix("-v0")

    @property
    def metric(self) -> str:
        """OGBench tasks are scored by success rate (%), DMC and driving tasks (no success signal) by episode return."""
        return "success" if self.source == "ogbench" else "return"


def _tasks(dataset: str, ids=range(1, 6)) -> tuple:
    base = dataset.removesuffix("-v0")
    return tuple(f"{base}-singletask-task{i}-v0" for i in ids)


SUITES = {
    # ~1 hour for DIPOLE with 2 seeds on 2 CPU cores: 5 pointmaze tasks, 200-episode dataset, 40k updates, 3x128.
    "ogbench-mini": Suite("ogbench-mini", "pointmaze-medium-navigate-v0", _tasks("pointmaze-medium-navigate-v0"),
                          episodes=200, steps=40_000, preset="small", eval_episodes=10, overrides={"lr": 1e-3},
                          role="development"),
    # Paper scale (GPU): full published datasets, 4x512, 1M updates, 50 evaluation episodes per task.
    **{
        f"ogbench-{cat}": Suite(f"ogbench-{cat}", f"{cat}-v0", _tasks(f"{cat}-v0"), episodes=None, steps=1_000_000,
                                preset="paper", eval_episodes=50, data_dir="~/.ogbench/data")
        for cat in ("cube-single-play", "cube-double-play", "scene-play", "puzzle-3x3-play")
    },
    # Manipulation on 2 CPU cores (OGBench's own play protocol, 200 episodes instead of 1000): 5 tasks x 4 seeds as one
    # population per agent in about 30 minutes. cube-single is a development suite, cube-double, scene and puzzle-3x3
    # are test suites (see results/protocol.md).
    **{
        f"{cat}-mini": Suite(f"{cat}-mini", f"{cat}-play-v0", _tasks(f"{cat}-play-v0"), episodes=200, steps=steps,
                             preset="small", eval_episodes=10, overrides={"lr": 1e-3}, sweep_omegas=omegas, role=role)
        # test suites sweep omega {0, 1} only: their episodes are 2.5-4x longer than cube-single's
        for cat, steps, role, omegas in (("cube-single", 15_000, "development", (0.0, 1.0, 2.0)),
                                         ("cube-double", 15_000, "test", (0.0, 1.0)),
                                         ("scene", 15_000, "test", (0.0, 1.0)),
                                         # the test suite of the protocol's second round (results/protocol.md)
                                         ("puzzle-3x3", 15_000, "test", (0.0, 1.0)))
    },
    # Pilot (learning curves, to find where agents separate): OGBench's full dataset size (1000 episodes), the tasks
    # that came off the floor in the mini suites, the headline evaluated every 10k updates with 20 episodes (and
    # subgoal progress on manipulation tasks), plus K 1 at omega 0 at the end. Run with --agents bc,iql,ifql,dipole.
    **{
        f"pilot-{cat}": Suite(f"pilot-{cat}", dataset, _tasks(dataset, tasks), episodes=1000, steps=steps,
                              preset="small", eval_episodes=20, overrides={"lr": 1e-3},
                              sweep_omegas=(0.0,), sweep_candidates=(1,), eval_every=10_000, role="pilot")
        for cat, dataset, tasks, steps in (("cube-single", "cube-single-play-v0", (1, 2, 3, 4), 50_000),
                                           ("pointmaze", "pointmaze-medium-navigate-v0", (1, 3), 50_000),
                                           ("scene", "scene-play-v0", (1,), 100_000),
                                           ("puzzle-3x3", "puzzle-3x3-play-v0", (1,), 100_000),
                                           ("cube-double", "cube-double-play-v0", (1,), 100_000))
    },
    # Round 3's development suite (results/protocol.md, rule 3), chosen by benchmarks/pilot_curves.py's written rule
    # from BC's, IQL's and IFQL's pilot curves only (results/pilot.md): pointmaze task 1 ranks at 30k and 40k updates
    # (best of IQL/IFQL 45 % and 80 %, BC 0 %), task 3 at no evaluated step (17.5 % at 20k, 100 % at 30k), so the
    # suite is task 1 at 30k, the pilot's data, networks and learning rate, seeds 0-3 with 30 episodes per setting,
    # and the knob grid of rule 6 (omega {0, 1, 2} x K {1, 4, 32}, argmax or tilt at K > 1).
    "dev-pointmaze": Suite("dev-pointmaze", "pointmaze-medium-navigate-v0",
                           ("pointmaze-medium-navigate-singletask-task1-v0",), episodes=1000, steps=30_000,
                           preset="small", eval_episodes=30, overrides={"lr": 1e-3}, sweep_omegas=(0.0, 1.0, 2.0),
                           sweep_candidates=(1, 4, 32), role="development"),
    # Round 3's test suites (results/protocol.md, rules 3, 4 and 7), one per family with a task that ranks in the
    # pilot (results/pilot.md), each at the smallest evaluated budget at which it ranks (scene task 1 and puzzle-3x3
    # task 1: 10k updates), the pilot's data, networks and learning rate, seeds 100-103, 50 episodes per setting,
    # the sweep omega {0, 2} x K {1, 32} (argmax and tilt; it holds DIPOLE's headline, the authors' sampling, K 1 at
    # the headline's omega: "w/o rs", and pi+ alone). Run once, after the freeze, with every agent:
    # `dipole bench --suite test-FAMILY --agents bc,iql,ifql,fql,cfgrl,dipole --seeds 4`; pooled by
    # benchmarks/pooled_stats.py. cube-double enters only if its pilot ranks.
    **{
        f"test-{fam}": Suite(f"test-{fam}", dataset, _tasks(dataset, (1,)),
                             episodes=1000, steps=10_000, preset="small", eval_episodes=50, overrides={"lr": 1e-3},
                             sweep_omegas=(0.0, 2.0), sweep_candidates=(1, 32), role="test", first_seed=100)
        for fam, dataset in (("scene", "scene-play-v0"), ("puzzle-3x3", "puzzle-3x3-play-v0"))
    },
    # Driving (highway-env, scripted drivers' data): one dataset, its tasks are reward weightings of the same data
    # (the default one, and safety and speed weighted up), so a population trains them together.
    "highway-mini": Suite("highway-mini", "highway-fast-v0",
                          ("highway-fast-v0", "highway-fast-v0:collision=300,offroad=300", "highway-fast-v0:speed=3"),
                          episodes=None, steps=20_000, preset="small", eval_episodes=10, overrides={"lr": 1e-3},
                          sweep_omegas=(0.0, 1.0), source="highway", role="development"),
    # For tests and smoke runs: one task, a handful of updates.
    "smoke": Suite("smoke", "pointmaze-medium-navigate-v0", ("pointmaze-medium-navigate-singletask-task1-v0",),
                   episodes=2, steps=200, preset="tiny", eval_episodes=1,
                   # DIPOLE's headline pinned to the authors' sampling (omega 0, argmax; K 2 here), one of the sweep's
                   # rows, rather than its OGBench headline (omega 2, tilt), which the smoke sweep does not hold
                   overrides={"flow_steps": 3, "num_candidates": 2, "omega": 0.0, "selection": "argmax"},
                   sweep_omegas=(0.0,), sweep_candidates=(1, 2), log_every=100, role="development", stats_reps=200),
}


def _dmc_tasks(domain: str) -> tuple:
    return tuple(f"dmc-{domain}-{task}" for task in DOMAINS[domain])


for _domain in ("walker", "cheetah", "quadruped"):
    # ExORL's setting: 1M exploratory transitions relabelled per task, 4x512 networks, 1M updates (GPU).
    SUITES[f"dmc-{_domain}"] = Suite(f"dmc-{_domain}", _domain, _dmc_tasks(_domain), episodes=None, steps=1_000_000,
                                     preset="paper", eval_episodes=10, source="dmc", data_steps=1_000_000,
                                     data_dir="~/.dipole/dmc")
# CPU-sized: 100k exploratory walker transitions, 20k updates, 3x128, 5 evaluation episodes per point.
SUITES["dmc-walker-mini"] = Suite("dmc-walker-mini", "walker", _dmc_tasks("walker"), episodes=None, steps=20_000,
                                  preset="small", eval_episodes=5, overrides={"lr": 1e-3}, source="dmc",
                                  data_steps=100_000, sweep_candidates=(1,))
SUITES["smoke-highway"] = Suite("smoke-highway", "highway-fast-v0", ("highway-fast-v0", "highway-fast-v0:speed=3"),
                                episodes=6, steps=100, preset="tiny", eval_episodes=1,
                                overrides={"flow_steps": 3, "num_candidates": 2}, sweep_omegas=(0.0,),
                                sweep_candidates=(1,), log_every=50, source="highway", role="development",
                                stats_reps=200)
SUITES["smoke-dmc"] = Suite("smoke-dmc", "walker", ("dmc-walker-stand",), episodes=None, steps=200, preset="tiny",
                            eval_episodes=1, overrides={"flow_steps": 3}, source="dmc", data_steps=2000,
                            sweep_omegas=(0.0, 2.0), sweep_candidates=(1,), log_every=100, role="development",
                            stats_reps=200)
SUITES["ogbench"] = SUITES["ogbench-cube-single-play"]  # alias; run the other categories by name
