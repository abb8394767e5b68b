"""dipole: offline RL with flow policies and an inference-time greediness knob.

Subcommands: quickstart, train, eval, finetune, bench, sweep, data. `dipole SUBCOMMAND --help` lists every option with its
type and default; agent hyperparameters are `--config.FIELD VALUE` in train, eval, finetune and bench alike.
"""


import ast
import dataclasses
import inspect
import json
import os
import sys
import typing
from typing import Annotated, Literal, Optional

import tyro

from dipole.agents import AGENTS, SIZE_PRESETS, build_config, get_agent
from dipole.agents.dipole import CRITICS
from dipole.errors import DipoleError, UsageError
from dipole.runners.logging import LogSettings
from dipole.runners.offline import TrainSettings
from dipole.runners.online import FinetuneSettings

AgentName = Literal[tuple(AGENTS)]  # type: ignore[valid-type]
PresetName = Literal[tuple(SIZE_PRESETS)]  # type: ignore[valid-type]
DEFAULT_OMEGAS = (0.0, 0.5, 1.0, 2.0, 4.0)  # the greediness values a sweep evaluates unless told otherwise
Flat = tyro.conf.OmitArgPrefixes  # a nested settings block whose options appear without a prefix (--steps, --seed)


# ---------------------------------------------------------------------------------------------- config options
def field_docs(cls) -> dict[str, str]:
    """The docstring under each dataclass field (what tyro shows as help), read from the class and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(inspect.getsource(klass).lstrip()).body[0].body
        except (OSError, TypeError, IndexError):
            continue
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def config_options(config_classes: list, defaults=None, note: str = "") -> type:
    """A dataclass of `--config.FIELD` options for the fields of `config_classes`.

    With `defaults` (a config instance) every option defaults to its value there; without, every option is optional
    (None = not given) and `note` says what applies instead.
    """
    fields, seen = [], set()
    for cls in config_classes:
        docs, hints = field_docs(cls), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in seen:
                continue
            seen.add(f.name)
            hint = hints[f.name]
            marks = [tyro.conf.FlagConversionOff] if hint is bool else []
            help_text = docs.get(f.name, "")
            if defaults is not None:
                value = getattr(defaults, f.name)
                fields.append((f.name, Annotated[(hint, *marks, tyro.conf.arg(help=help_text))],
                               dataclasses.field(default=value)))
            else:
                users = [a for a, (_, c) in AGENTS.items() if c in config_classes and f.name in c.field_names()]
                extra = f" [{', '.join(users)}]" if len(config_classes) > 1 else ""
                fields.append((f.name, Annotated[(Optional[hint], *marks,
                                                  tyro.conf.arg(help=f"{help_text} ({note}){extra}"))],
                               dataclasses.field(default=None)))
    return dataclasses.make_dataclass("ConfigOptions", fields, frozen=True)


def unchecked(cls):
    """`cls` without its __post_init__ checks, for parsing: the command validates afterwards with `checked`, so a bad
    value gets the library's own one-line error instead of a parser traceback box."""
    return type(cls.__name__, (cls,), {"__post_init__": lambda self: None, "__doc__": cls.__doc__,
                                       "__module__": cls.__module__})


TrainSettingsArgs, FinetuneSettingsArgs, LogSettingsArgs = (unchecked(c) for c in (TrainSettings, FinetuneSettings,
                                                                                  LogSettings))


@dataclasses.dataclass
class BackendArgs:
    """Where the population programs of a bench or sweep run."""

    backend: Literal["local", "ray"] = "local"
    """local: in this process, one after another; ray: as Ray tasks on this machine or a cluster (pip install -e
    '.[ray]')."""
    address: Optional[str] = None
    """ray: 'auto' joins the cluster `ray start --head` made on this machine, HOST:PORT that head node; default:
    start Ray on this machine for this command."""
    cpus_per_run: float = float(os.cpu_count() or 1)
    """ray: CPUs each population job declares; it gets that many JAX CPU devices (default: this machine's cores, so
    the numbers equal the local backend's here)."""
    gpus_per_run: float = 0.0
    """ray: GPUs each job declares (0.5: two jobs share a GPU); 0 runs on CPUs."""
    max_retries: int = 3
    """ray: times a job whose worker died is run again (it resumes from its last checkpoint)."""
    storage: Optional[str] = None
    """ray: a folder every node shares; output goes to STORAGE/bench/SUITE (sweeps STORAGE/sweep/SUITE-AGENT) unless
    --out is given."""


def make_backend(a: BackendArgs):
    from dipole.bench.backends import LocalBackend, RayBackend

    if a.backend == "local":
        ray_only = {"--address": a.address, "--gpus-per-run": a.gpus_per_run or None, "--storage": a.storage,
                    "--max-retries": None if a.max_retries == 3 else a.max_retries,
                    "--cpus-per-run": None if a.cpus_per_run == float(os.cpu_count() or 1) else a.cpus_per_run}
        given_ = [k for k, v in ray_only.items() if v is not None]
        if given_:
            raise UsageError(f"{', '.join(given_)} appl{'y' if len(given_) > 1 else 'ies'} to --backend ray only; add "
                             "--backend ray, or drop them")
        return LocalBackend()
    return RayBackend(address=a.address, cpus_per_run=a.cpus_per_run, gpus_per_run=a.gpus_per_run,
                      max_retries=a.max_retries, storage=a.storage)


def parse_grid(agent: str, specs: tuple[str, ...]) -> dict[str, list]:
    """`--grid FIELD=V1,V2,...` (repeatable) -> {field: [typed values]}, each value parsed exactly as `--config.FIELD
    VALUE` would be (a tuple field takes space-separated elements: actor_hidden_dims=256 256,512 512)."""
    import contextlib
    import io
    import shlex

    config_cls = get_agent(agent)[1]
    options = config_options([config_cls], config_cls())
    names = [f.name for f in dataclasses.fields(options)]
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not values.strip():
            raise UsageError(f"--grid {spec!r}: write FIELD=V1,V2,... (e.g. --grid beta=1,3,10)")
        if name not in names:
            raise UsageError(f"--grid {spec!r}: {agent} has no config field {name!r}; fields: {', '.join(names)}")
        if name in grid:
            raise UsageError(f"--grid {name} is given twice; put all its values in one --grid {name}=V1,V2,...")
        grid[name] = []
        for raw in values.split(","):
            flag = "--" + name.replace("_", "-")
            try:
                with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                    parsed = tyro.cli(options, args=[flag, *shlex.split(raw)])
            except SystemExit:
                hint = typing.get_type_hints(config_cls)[name]
                raise UsageError(f"--grid {name}: {raw.strip()!r} is not a value of type {_type_name(hint)} (as "
                                 f"--config.{name} reads it)") from None
            grid[name].append(getattr(parsed, name))
    return grid


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def checked(cls, value):
    """The parsed settings as a real (validated) `cls`."""
    return cls(**{f.name: getattr(value, f.name) for f in dataclasses.fields(cls)})


def given(options) -> dict:
    """The `--config.*` options that were set (optional ones left at None are not)."""
    return {k: v for k, v in dataclasses.asdict(options).items() if v is not None}


def _peek(argv: list[str], flag: str) -> str | None:
    """The value of `--flag VALUE` or `--flag=VALUE` in argv, if present (the last one wins, as argparse does)."""
    value = None
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


# ---------------------------------------------------------------------------------------------- subcommands
def make_commands(argv: list[str]) -> dict[str, type]:
    """The subcommands' option dataclasses. Config defaults depend on --agent, --preset and --env (train) or on the
    checkpoint (eval, finetune), so they are read from argv first and `--help` shows the values that will apply."""
    agent = _peek(argv, "--agent") or "dipole"
    agent = agent if agent in AGENTS else "dipole"  # an unknown name is refused by the Literal below
    preset = _peek(argv, "--preset") or "paper"
    preset = preset if preset in SIZE_PRESETS else "paper"
    env = _peek(argv, "--env")
    critic_form = _peek(argv, "--config.critic")  # DIPOLE's critic form selects its defaults and task rules
    form = {"critic": critic_form} if agent == "dipole" and critic_form in CRITICS else {}
    train_defaults = build_config(agent, env, preset, form)
    ckpt_config = _checkpoint_config_class(_peek(argv, "--checkpoint"))
    bench_agents = [a for a in (_peek(argv, "--agents") or "dipole").split(",") if a in AGENTS] or ["dipole"]

    TrainConfig = config_options([get_agent(agent)[1]], train_defaults)
    EvalConfig = config_options([ckpt_config], note="None: the checkpoint's value; eval changes only sampling fields")
    FinetuneConfig = config_options([ckpt_config], note="None: the checkpoint's value")
    BenchConfig = config_options([get_agent(a)[1] for a in bench_agents],
                                 note="None: each agent's value for the suite")
    SweepConfig = config_options([get_agent(agent)[1]], note="None: the agent's value for the suite; fixed at every "
                                                           "grid point")

    @dataclasses.dataclass
    class Quickstart:
        """Small end-to-end run on pointmaze: OGBench-protocol data, DIPOLE (small networks), omega sweep, plots."""

        run_dir: str = "runs/quickstart"
        """Output folder."""
        episodes: int = 200
        """Training episodes of 1001 steps to generate."""
        steps: int = 40_000
        """Gradient updates."""
        lr: float = 1e-3
        """Adam learning rate (1e-3 for this short CPU budget)."""
        eval_episodes: int = 10
        """Episodes per evaluation."""
        omega: tuple[float, ...] = DEFAULT_OMEGAS
        """Greediness values of the sweep."""
        num_candidates: tuple[int, ...] = (1, 32)
        """Rejection-sampling K values of the sweep."""
        workers: int = os.cpu_count() or 1
        """Processes for data generation."""
        seed: int = 0
        """Seed of data, training and evaluation."""
        resume: bool = False
        """Continue from the newest checkpoint in --run-dir."""
        overwrite: bool = False
        """Delete an earlier run in --run-dir and start again."""

    @dataclasses.dataclass
    class Train:
        """Train an agent offline (OGBench single-task name, dmc-DOMAIN-TASK, or highway-fast-v0[:weights]).

        The agent's config is its defaults <- --preset <- settings fixed in advance for --env <- --config.FIELD.
        Defaults shown below are those that apply to the --agent, --preset and --env on this command line.
        """

        env: str
        """Environment / task, e.g. cube-single-play-singletask-task2-v0."""
        dataset: Optional[str] = None
        """Path to NAME.npz (NAME-val.npz beside it for OGBench); default: ~/.ogbench/data."""
        agent: AgentName = "dipole"
        """Agent to train."""
        preset: PresetName = "paper"
        """Network sizes: paper (4x512, a GPU job at 1M steps), small (3x128, for CPUs), tiny (2x32, tests)."""
        run_dir: Optional[str] = None
        """Output folder; default runs/ENV-AGENT-seedSEED."""
        resume: bool = False
        """Continue from the newest checkpoint in --run-dir (refused if its seed, data or config differ)."""
        overwrite: bool = False
        """Delete an earlier run in --run-dir (only the files a run writes) and start again."""
        download: bool = False
        """Let OGBench download missing dataset files (needs the internet)."""
        clip_actions: bool = False
        """Clip out-of-range dataset actions to [-1, 1] (and report how many)."""
        seeds: Optional[str] = None
        """Train these seeds as one population, one compiled program (e.g. 0,1,2,3); --seed is then not used."""
        settings: Annotated[TrainSettingsArgs, Flat] = dataclasses.field(default_factory=TrainSettingsArgs)
        logging: Annotated[LogSettingsArgs, Flat] = dataclasses.field(default_factory=LogSettingsArgs)
        config: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @dataclasses.dataclass
    class Eval:
        """Evaluate a checkpoint at several omegas and K without retraining; each call writes new files."""

        checkpoint: str
        """Checkpoint file, or a run folder (its newest valid checkpoint)."""
        omega: Optional[tuple[float, ...]] = None
        """Greediness values to evaluate (default: 0 0.5 1 2 4, for agents with a greediness knob)."""
        num_candidates: tuple[int, ...] = (1, 32)
        """Candidate counts K to evaluate (1: no selection)."""
        selection: Optional[tuple[str, ...]] = None
        """Selection rules evaluated at each K > 1: argmax (rejection sampling by min Q) and, for dipole, tilt
        (K candidates from pi+, one resampled with probability ∝ exp(omega·beta·G)); default: argmax and the
        checkpoint's own rule."""
        term_weights: tuple[str, ...] = ()
        """dipole-terms: weight settings to evaluate, one per value, each TERM=WEIGHT[,TERM=WEIGHT...] (e.g.
        speed=1,safety=4,lane=0.5); terms not named keep the checkpoint's config.term_weights. Replaces --omega."""
        episodes: int = 50
        """Episodes per (omega, K, selection)."""
        env: Optional[str] = None
        """Environment; default: the one stored in the checkpoint."""
        seed: int = 0
        """Seed of the evaluation episodes."""
        out: Optional[str] = None
        """Folder for eval-stepSTEP-N.json/png (N is new on every call); default: the run folder."""
        config: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    @dataclasses.dataclass
    class Finetune:
        """Offline-to-online: keep training a checkpoint while acting in its environment."""

        checkpoint: str
        """Offline checkpoint file or run folder."""
        env: Optional[str] = None
        """Environment; default: the checkpoint's."""
        dataset: Optional[str] = None
        """Offline data for the buffer; default: the file the checkpoint was trained on."""
        run_dir: Optional[str] = None
        """Output folder; default runs/ENV-AGENT-finetune-seedSEED."""
        resume: bool = False
        """Continue the fine-tune in --run-dir after a kill (refused if its seed, data or settings differ)."""
        overwrite: bool = False
        """Delete an earlier fine-tune in --run-dir and start again."""
        download: tyro.conf.Suppress[bool] = False
        clip_actions: bool = False
        """Clip out-of-range dataset actions to [-1, 1] (and report how many)."""
        settings: Annotated[FinetuneSettingsArgs, Flat] = dataclasses.field(default_factory=FinetuneSettingsArgs)
        logging: Annotated[LogSettingsArgs, Flat] = dataclasses.field(default_factory=LogSettingsArgs)
        config: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)

    @dataclasses.dataclass
    class Bench:
        """Run every (task, agent, seed) of a suite; resumable; writes results.md/json/png."""

        suite: str
        """Suite name: ogbench-mini, dmc-walker-mini, ogbench-cube-single-play, ..., smoke (see dipole/bench/suites.py)."""
        agents: str = "dipole"
        """Comma-separated agent names."""
        seeds: int = 2
        """Seeds per (task, agent)."""
        out: Optional[str] = None
        """Output folder; default runs/bench/SUITE."""
        workers: int = os.cpu_count() or 1
        """Processes for data generation and for stepping a population's evaluation environments (its members split
        among them; the results are the same for any number)."""
        report: bool = False
        """Only write the tables from the runs finished so far."""
        overwrite: bool = False
        """Delete the earlier runs and results in --out (not its data) and start again."""
        population: bool = True
        """Train each agent's tasks x seeds as one population (one compiled program); --no-population: run by run."""
        max_population: Optional[int] = None
        """At most this many members per population (default: all of an agent's unfinished runs)."""
        run: Annotated[BackendArgs, Flat] = dataclasses.field(default_factory=BackendArgs)
        config: BenchConfig = dataclasses.field(default_factory=BenchConfig)

    @dataclasses.dataclass
    class Sweep:
        """Train and evaluate one agent at every point of a grid over config fields (seeds at each point) on a
        development suite; writes sweep.md/json/png (mean ± std over seeds per point) and a bench folder per point."""

        suite: str
        """Suite name; a development suite (cube-single-mini, ogbench-mini, ...) unless --any-suite."""
        grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction]
        """FIELD=V1,V2,... (repeat for more fields: --grid beta=1,3,10 --grid expectile=0.7,0.9); values are read
        as --config.FIELD reads them."""
        agent: AgentName = "dipole"
        """Agent to sweep."""
        seeds: int = 2
        """Seeds per grid point."""
        out: Optional[str] = None
        """Output folder; default runs/sweep/SUITE-AGENT."""
        workers: int = os.cpu_count() or 1
        """Processes for data generation."""
        any_suite: bool = False
        """Allow a suite that is not a development suite (test suites are for reporting with settings frozen)."""
        overwrite: bool = False
        """Delete the earlier sweep in --out (not its data) and start again."""
        max_population: Optional[int] = None
        """At most this many members per population (default: all of a point's unfinished runs)."""
        run: Annotated[BackendArgs, Flat] = dataclasses.field(default_factory=BackendArgs)
        config: SweepConfig = dataclasses.field(default_factory=SweepConfig)

    @dataclasses.dataclass
    class Data:
        """Make benchmark datasets locally (OGBench's file layout and protocol; DMC exploration; highway drivers)."""

        source: tyro.conf.Positional[Literal["ogbench", "dmc", "highway"]]
        """Which benchmark."""
        name: tyro.conf.Positional[Optional[str]] = None
        """ogbench: a dataset such as cube-double-play-v0; dmc: walker, cheetah or quadruped; highway: highway-fast-v0."""
        episodes: Optional[int] = None
        """ogbench: training episodes (default: the published count); highway: driver episodes (default 500)."""
        steps: int = 1_000_000
        """dmc: transitions to collect."""
        explorers: int = 8
        """dmc: independent explorers (fixes the output)."""
        workers: int = os.cpu_count() or 1
        """Processes."""
        seed: int = 0
        """Seed of the data."""
        out: Optional[str] = None
        """Output folder; default ~/.ogbench/data (ogbench), ~/.dipole/dmc (dmc), ~/.dipole/highway (highway)."""

    return {"quickstart": Quickstart, "train": Train, "eval": Eval, "finetune": Finetune, "bench": Bench,
            "sweep": Sweep, "data": Data}


def _checkpoint_config_class(path: str | None):
    """The config class of the agent in a checkpoint (DIPOLE's when there is none or it cannot be read); only the
    header of the newest file is read: this runs while parsing, and the command verifies the checkpoint itself."""
    from dipole.storage import CheckpointError, list_checkpoints, read_header

    try:
        files = (list_checkpoints(path) if os.path.isdir(path) else [path]) if path else []
        return get_agent(read_header(files[-1]).get("agent", "dipole") if files else "dipole")[1]
    except (CheckpointError, ValueError, OSError):
        return get_agent("dipole")[1]


# ---------------------------------------------------------------------------------------------- actions
def _load_training_data(env: str, dataset: str | None, download: bool, clip_actions: bool):
    """-> (train Dataset, validation Dataset or None) for any environment family."""
    from dipole.data import load_dataset

    train_ds, val_ds = load_dataset(env, dataset, download, clip_actions)
    if train_ds.num_clipped_actions:
        print(f"note: clipped {train_ds.num_clipped_actions} out-of-range action rows to [-1, 1] (--clip-actions)")
    return train_ds, val_ds


def finish_run(run_dir, env_name, agent, sweep_rows=None, extra=None, plot=True, sweep_file=None):
    """Write summary.json (and the learning curve), then say which files the run folder holds."""
    from dipole.runners.logging import read_csv
    from dipole.runners.plots import learning_curve
    from dipole.storage import atomic_write_json, list_checkpoints

    metrics = read_csv(os.path.join(run_dir, "metrics.csv"))
    evals = read_csv(os.path.join(run_dir, "eval.csv"))
    if plot:
        learning_curve(metrics, evals, os.path.join(run_dir, "learning_curve.png"), title=f"{env_name}")
    summary = {
        "env": env_name,
        "agent": agent.config.agent,
        "config": agent.config.to_dict(),
        "steps": int(agent.step),
        "final_train_metrics": metrics[-1] if metrics else None,
        "evaluations": evals,
        "final_evaluation": evals[-1] if evals else None,
        **(extra or {}),
    }
    if sweep_rows is not None:
        summary["omega_sweep"] = sweep_rows
        from dipole.runners.evaluation import row_selection

        head_sel = agent.selection_of() if agent.config.num_candidates > 1 else None
        head = [r for r in sweep_rows if r["omega"] == agent.config.omega
                and r["num_candidates"] == agent.config.num_candidates and row_selection(r) == head_sel]
        summary["headline"] = head[0] if head else None
    atomic_write_json(os.path.join(run_dir, "summary.json"), summary)
    names = ["summary.json", "config.json", "metrics.csv", "eval.csv", "episodes.csv", "learning_curve.png",
             "finetune_curve.png"] + ([os.path.basename(f) for f in (sweep_file + ".json", sweep_file + ".png")]
                                      if sweep_file else [])
    present = [n for n in names if os.path.exists(os.path.join(run_dir, n))]
    ckpts = len(list_checkpoints(run_dir))
    if ckpts:
        present.append(f"checkpoints/ ({ckpts} file{'s' if ckpts > 1 else ''})")
    print(f"wrote {run_dir}/: " + ", ".join(present))


def parse_seeds(text: str) -> list[int]:
    """'0,1,2,3' -> [0, 1, 2, 3]; refuses empty, negative, repeated or non-integer seeds."""
    items = [x.strip() for x in text.replace(" ", ",").split(",") if x.strip()]
    try:
        seeds = [int(x) for x in items]
    except ValueError:
        raise UsageError(f"--seeds: {text!r} is not a comma-separated list of integers (e.g. --seeds 0,1,2,3)") \
            from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: {text!r} must list distinct seeds >= 0 (e.g. --seeds 0,1,2,3)")
    return seeds


def cmd_train(a):
    from dipole.runfolder import open_run_folder
    from dipole.runners.loop import train

    a.settings, a.logging = checked(TrainSettings, a.settings), checked(LogSettings, a.logging)
    config = get_agent(a.agent)[1]().replace(**dataclasses.asdict(a.config))
    seeds = parse_seeds(a.seeds) if a.seeds is not None else None
    tag = f"seed{a.settings.seed}" if seeds is None else f"seeds{'-'.join(map(str, seeds))}"
    run_dir = a.run_dir or os.path.join("runs", f"{a.env}-{a.agent}-{tag}")
    # before the data is read: a busy or used folder is refused at once (an --overwrite happens in train, once the
    # data has loaded)
    with open_run_folder(run_dir, a.resume, a.overwrite, delete=False):
        dataset, val = _load_training_data(a.env, a.dataset, a.download, a.clip_actions)
        print(f"dataset: {dataset.summary()}"
              + (f"; validation split {len(val)} transitions" if val is not None else ""))
        each = "" if seeds is None else f"seeds {seeds} as one population, "
        print(f"run folder: {run_dir}; agent {a.agent}, preset {a.preset}, {each}{a.settings.steps} updates"
              f"{'' if seeds is None else ' each'}, evaluation every {a.settings.eval_every or 'never'} updates and "
              f"at the end ({a.settings.eval_episodes} episodes{'' if seeds is None else ' per member'})")
        if seeds is not None:
            return train_population_cli(a, run_dir, config, seeds, dataset, val)
        agent = train(run_dir, a.env, dataset, a.agent, config, a.settings, resume=a.resume, val_dataset=val,
                      logging=a.logging, overwrite=a.overwrite)
        finish_run(run_dir, a.env, agent)


def train_population_cli(a, run_dir, config, seeds, dataset, val):
    """`dipole train --seeds`: the population, each member's checkpoint and learning curve, summary.json."""
    import numpy as np

    from dipole.runners.logging import read_csv
    from dipole.runners.loop import train_population
    from dipole.runners.plots import learning_curve
    from dipole.runners.population import PopulationData, export_members, members_of
    from dipole.storage import atomic_write_json

    data = PopulationData([a.env], [dataset])
    val_data = PopulationData([a.env], [val]) if val is not None else None
    pop = train_population(run_dir, members_of([a.env], seeds), data, a.agent, config, a.settings,
                           resume=a.resume, val_data=val_data, logging=a.logging, overwrite=a.overwrite)
    paths = export_members(pop, run_dir, data, lambda m: os.path.join(run_dir, "members",
                                                                      f"{m.task}-seed{m.seed}.dpl"), val_data)
    metrics = read_csv(os.path.join(run_dir, "metrics.csv"))
    evals = read_csv(os.path.join(run_dir, "eval.csv"))
    members = []
    for m, path in zip(pop.members, paths):
        mine = lambda rows: [r for r in rows if r["task"] == m.task and int(r["seed"]) == m.seed]  # noqa: E731
        learning_curve(mine(metrics), mine(evals), path.removesuffix(".dpl") + ".png",
                       title=f"{m.task} seed {m.seed}")
        members.append({"task": m.task, "seed": m.seed, "checkpoint": path,
                        "final_train_metrics": (mine(metrics) or [None])[-1],
                        "final_evaluation": (mine(evals) or [None])[-1]})
    scores = [r["final_evaluation"]["success"] for r in members
              if r["final_evaluation"] and r["final_evaluation"].get("success") is not None]
    atomic_write_json(os.path.join(run_dir, "summary.json"), {
        "env": a.env, "agent": a.agent, "config": config.to_dict(), "steps": int(np.max(pop.agents.step)),
        "members": members,
        "success_mean_std": [float(np.mean(scores)), float(np.std(scores))] if scores else None})
    if scores:
        print(f"success over {len(scores)} seeds: {100 * np.mean(scores):.1f} ± {100 * np.std(scores):.1f} % "
              f"(per seed: {', '.join(f'{100 * x:.0f}' for x in scores)})")
    print(f"wrote {run_dir}/: summary.json, config.json, metrics.csv, eval.csv, checkpoints/ (the population), "
          f"members/ ({len(paths)} single-agent checkpoints with learning curves)")


def cmd_eval(a):
    from dipole.agents import load_checkpoint
    from dipole.runners.sweep import format_sweep_table, new_output_stem, run_sweep
    from dipole.storage import read_header, resolve_checkpoint

    path = resolve_checkpoint(a.checkpoint)
    header = read_header(path)
    overrides = given(a.config)
    config_cls = get_agent(header["agent"])[1]
    not_sampling = sorted(set(overrides) - set(config_cls.INFERENCE_FIELDS))
    if not_sampling:
        allowed = [f for f in config_cls.INFERENCE_FIELDS if f in config_cls.field_names()]
        raise UsageError(f"--config.{not_sampling[0]} changes training, not sampling; `dipole eval` can change "
                         f"{allowed} (use `dipole train` or `dipole finetune` for the rest)")
    if a.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {a.episodes}")
    config = config_cls.from_dict(header["config"]).replace(**overrides)
    agent, header = load_checkpoint(path, config)
    has_omega = agent.samples_with("omega")
    omegas = list(DEFAULT_OMEGAS if a.omega is None else a.omega) if has_omega else [None]
    candidates = list(a.num_candidates)
    if not agent.samples_with("num_candidates") and any(k > 1 for k in candidates):
        candidates = [1]
        print(f"note: agent '{header['agent']}' cannot rank candidate actions; evaluating with --num-candidates 1")
    if not has_omega and a.omega is not None and any(w != 0.0 for w in a.omega):
        terms = " (it weights reward terms: use --term-weights)" if agent.samples_with("term_weights") else ""
        raise UsageError(f"agent '{header['agent']}' has no greediness knob; --omega applies to dipole and cfgrl"
                         + terms)
    env_name = a.env or header["env"]
    out_dir = a.out or (a.checkpoint if os.path.isdir(a.checkpoint) else os.path.dirname(path))
    if not omegas or not candidates:
        raise UsageError("--omega and --num-candidates need at least one value each")
    selections = list(dict.fromkeys(("argmax", agent.selection_of()))) if a.selection is None else list(a.selection)
    if not selections:
        raise UsageError("--selection needs at least one value (argmax, tilt)")
    if all(k == 1 for k in candidates):
        selections = ["argmax"]  # no selection happens at K = 1
    if a.term_weights or agent.samples_with("term_weights"):
        return _eval_term_weights(a, agent, header, path, env_name, out_dir, candidates, selections)
    for w in omegas:  # every value is checked before the first evaluation
        for k in candidates:
            for sel in selections:
                agent.sampling(omega=w, num_candidates=k, selection=sel)
    stem = new_output_stem(out_dir, f"eval-step{header['step']:08d}")
    print(f"loaded {path} (agent {header['agent']}, step {header['step']}); evaluating on {env_name}")
    rows = run_sweep(agent, env_name, stem, omegas, candidates, a.episodes, a.seed,
                     title=f"{env_name} @ step {header['step']}", selections=selections)
    head = agent.sampling().fields()
    print(format_sweep_table(rows, head["omega"], head["num_candidates"], agent.selection_of()))
    print(f"wrote {stem}.json and {stem}.png")


def _eval_term_weights(a, agent, header, path, env_name, out_dir, candidates, selections):
    """`dipole eval` of an agent that weights reward terms: one sweep over K and selection per weight setting."""
    from dipole.runners.sweep import format_sweep_table, new_output_stem, run_sweep

    if not agent.samples_with("term_weights"):
        raise UsageError(f"agent '{header['agent']}' has no reward terms; --term-weights applies to dipole-terms "
                         "(use --omega)")
    if a.omega is not None:
        raise UsageError(f"agent '{header['agent']}' weights reward terms instead of one omega; use --term-weights "
                         f"(terms: {', '.join(agent.config.terms)})")
    for w in a.term_weights or [None]:  # every setting is checked before the first evaluation
        for k in candidates:
            for sel in selections:
                agent.sampling(num_candidates=k, selection=sel, term_weights=w)
    settings = [agent.weight_vector(w) for w in a.term_weights] or [agent.weight_vector()]
    print(f"loaded {path} (agent {header['agent']}, step {header['step']}); evaluating on {env_name}")
    for vec in settings:
        named = ", ".join(f"{t}={w:g}" for t, w in zip(agent.config.terms, vec))
        weighted = agent.replace(config=agent.config.replace(term_weights=tuple(float(w) for w in vec)))
        stem = new_output_stem(out_dir, f"eval-step{header['step']:08d}")
        rows = run_sweep(weighted, env_name, stem, [None], candidates, a.episodes, a.seed,
                         title=f"{env_name} @ step {header['step']}, {named}", selections=selections)
        print(f"term weights {named}:")
        print(format_sweep_table(rows, None, agent.config.num_candidates, agent.selection_of()))
        print(f"wrote {stem}.json and {stem}.png")


def cmd_finetune(a):
    from dipole.agents import load_checkpoint
    from dipole.runfolder import open_run_folder
    from dipole.runners.logging import read_csv
    from dipole.runners.online import finetune
    from dipole.runners.plots import finetune_curve
    from dipole.storage import read_header, resolve_checkpoint

    a.settings, a.logging = checked(FinetuneSettings, a.settings), checked(LogSettings, a.logging)
    path = resolve_checkpoint(a.checkpoint)
    header = read_header(path)
    config_cls = get_agent(header["agent"])[1]
    saved = config_cls.from_dict(header["config"])
    overrides = given(a.config)
    reshaped = sorted(k for k in set(overrides) & set(config_cls.SHAPE_FIELDS) if overrides[k] != getattr(saved, k))
    if reshaped:
        raise UsageError(f"--config.{reshaped[0]} changes the networks' shapes; the checkpoint cannot be fine-tuned "
                         "with it (train a new agent instead)")
    agent, header = load_checkpoint(path, saved.replace(**overrides))
    if "finetune" in header and not a.resume:
        print(f"note: {path} is itself a fine-tuned checkpoint; fine-tuning continues from it with a fresh buffer")
    env = a.env or header["env"]
    dataset_path = a.dataset
    if not dataset_path and header.get("dataset_path") and os.path.exists(header["dataset_path"]):
        dataset_path = header["dataset_path"]
    run_dir = a.run_dir or os.path.join("runs", f"{env}-{header['agent']}-finetune-seed{a.settings.seed}")
    with open_run_folder(run_dir, a.resume, a.overwrite, what="fine-tune", delete=False):
        dataset, _ = _load_training_data(env, dataset_path, a.download, a.clip_actions)
        print(f"loaded {path} (agent {header['agent']}, {header['step']} updates); offline data {dataset.name} "
              f"({len(dataset)} transitions); run folder {run_dir}")
        agent, buffer = finetune(run_dir, env, dataset, agent, a.settings, resume=a.resume, source=path,
                                 logging=a.logging, overwrite=a.overwrite)
        finetune_curve(read_csv(os.path.join(run_dir, "eval.csv")), read_csv(os.path.join(run_dir, "episodes.csv")),
                       os.path.join(run_dir, "finetune_curve.png"),
                       title=f"{env}: {header['agent']} offline -> online")
        finish_run(run_dir, env, agent, extra={"mode": "finetune", "source": path, "online_steps": buffer.count,
                                               "buffer_transitions": len(buffer)}, plot=False)


def cmd_bench(a):
    from dipole.bench.report import markdown_tables
    from dipole.bench.runner import run_bench

    agents = [x.strip() for x in a.agents.split(",") if x.strip()]
    backend = make_backend(a.run)
    summary = run_bench(a.suite, agents, a.seeds, out_dir=a.out, workers=a.workers, report_only=a.report,
                        overrides=given(a.config), overwrite=a.overwrite, population=a.population,
                        max_population=a.max_population, backend=backend)
    out = a.out or os.path.join(backend.root, "bench", a.suite)
    print(markdown_tables(summary))
    print(f"wrote {out}/results.md, results.json, results.png")


def cmd_sweep(a):
    from dipole.bench.sweep import run_sweep, sweep_table

    backend = make_backend(a.run)
    summary = run_sweep(a.suite, a.agent, parse_grid(a.agent, a.grid), a.seeds, out_dir=a.out, backend=backend,
                        workers=a.workers, any_suite=a.any_suite, overwrite=a.overwrite, overrides=given(a.config),
                        max_population=a.max_population)
    out = a.out or os.path.join(backend.root, "sweep", f"{a.suite}-{a.agent}")
    print(sweep_table(summary))
    print(f"wrote {out}/sweep.md, sweep.json, sweep.png (and a bench folder per point in {out}/points)")


def cmd_data(a):
    if a.source != "highway" and not a.name:
        raise UsageError(f"`dipole data {a.source}` needs a NAME (see `dipole data --help`)")
    if a.source == "highway":
        from dipole.datagen.highway import DEFAULT_DATA_EPISODES, generate_highway

        info = generate_highway(a.name or "highway-fast-v0", episodes=a.episodes or DEFAULT_DATA_EPISODES,
                                workers=a.workers, seed=a.seed, out_dir=a.out or "~/.dipole/highway")
    elif a.source == "dmc":
        from dipole.datagen.dmc import generate_dmc

        info = generate_dmc(a.name, steps=a.steps, explorers=a.explorers, workers=a.workers, seed=a.seed,
                            out_dir=a.out or "~/.dipole/dmc")
    else:
        from dipole.datagen.ogbench import generate_ogbench

        info = generate_ogbench(a.name, episodes=a.episodes, workers=a.workers, seed=a.seed,
                                out_dir=a.out or "~/.ogbench/data")
    print(json.dumps(info, indent=2))


def cmd_quickstart(a):
    from dipole.bench.quickstart import quickstart

    quickstart(run_dir=a.run_dir, episodes=a.episodes, steps=a.steps, lr=a.lr, eval_episodes=a.eval_episodes,
               omegas=a.omega, candidates=a.num_candidates, workers=a.workers, seed=a.seed, resume=a.resume,
               overwrite=a.overwrite,
               finish=lambda run_dir, env, agent, rows, extra: finish_run(run_dir, env, agent, rows, extra,
                                                                          sweep_file=os.path.join(run_dir,
                                                                                                  "omega_sweep")))


ACTIONS = {"quickstart": cmd_quickstart, "train": cmd_train, "eval": cmd_eval, "finetune": cmd_finetune,
           "bench": cmd_bench, "sweep": cmd_sweep, "data": cmd_data}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    from dipole.runners.population import use_cpu_cores

    use_cpu_cores()
    commands = make_commands(argv)
    try:
        args = tyro.extras.subcommand_cli_from_dict(commands, prog="dipole", description=__doc__, args=argv)
        ACTIONS[next(name for name, cls in commands.items() if isinstance(args, cls))](args)
    except DipoleError as e:  # the library's own checks: one line; anything else is a bug and keeps its traceback
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
