"""What every subcommand shares: `--config.FIELD` options built from the agents' config dataclasses, the settings
blocks, the Ray backend options, argument checks, and what is read from the command line before parsing."""

import ast
import dataclasses
import functools
import inspect
import os
import typing
from typing import Annotated, Literal, Optional

import tyro

from dipole.agents import AGENTS, SIZE_PRESETS, build_config, get_agent
from dipole.agents.dipole import CRITICS
from dipole.errors import UsageError
from dipole.runners.logging import LogSettings
from dipole.runners.offline import TrainSettings
from dipole.runners.online import FinetuneSettings

AgentName = Literal[tuple(AGENTS)]  # type: ignore[valid-type]
PresetName = Literal[tuple(SIZE_PRESETS)]  # type: ignore[valid-type]
DEFAULT_OMEGAS = (0.0, 0.5, 1.0, 2.0, 4.0)  # the greediness values a sweep evaluates unless told otherwise
Flat = tyro.conf.OmitArgPrefixes  # a nested settings block whose options appear without a prefix (--steps, --seed)


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


def peek(argv: list[str], flag: str) -> str | None:
    """The value of `--flag VALUE` or `--flag=VALUE` in argv, if present (the last one wins, as argparse does)."""
    value = None
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def checkpoint_config_class(path: str | None):
    """The config class of the agent in a checkpoint (DIPOLE's when there is none or it cannot be read); only the
    header of the newest file is read: this runs while parsing, and the command verifies the checkpoint itself."""
    from dipole.storage import CheckpointError, list_checkpoints, read_header

    try:
        files = (list_checkpoints(path) if os.path.isdir(path) else [path]) if path else []
        return get_agent(read_header(files[-1]).get("agent", "dipole") if files else "dipole")[1]
    except (CheckpointError, ValueError, OSError):
        return get_agent("dipole")[1]


def load_training_data(env: str, dataset: str | None, download: bool, clip_actions: bool):
    """-> (train Dataset, validation Dataset or None) of any family (`dipole.data.load_dataset`), saying how many
    action rows --clip-actions clipped."""
    from dipole.data import load_dataset

    train_ds, val_ds = load_dataset(env, dataset, download, clip_actions)
    if train_ds.num_clipped_actions:
        print(f"note: clipped {train_ds.num_clipped_actions} out-of-range action rows to [-1, 1] (--clip-actions)")
    return train_ds, val_ds


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




class Context:
    """What the command line says before it is parsed, and the `--config.FIELD` option classes built from it once.
    Config defaults depend on --agent, --preset and --env (train) or on the checkpoint (eval, finetune), so they are
    read from argv first and `--help` shows the values that will apply."""

    def __init__(self, argv: list[str]):
        agent = peek(argv, "--agent") or "dipole"
        self.agent = agent if agent in AGENTS else "dipole"  # an unknown name is refused by the Literal
        preset = peek(argv, "--preset") or "paper"
        self.preset = preset if preset in SIZE_PRESETS else "paper"
        self.env = peek(argv, "--env")
        critic_form = peek(argv, "--config.critic")  # DIPOLE's critic form selects its defaults and task rules
        self.form = {"critic": critic_form} if self.agent == "dipole" and critic_form in CRITICS else {}
        self.checkpoint = peek(argv, "--checkpoint")
        self.bench_agents = [a for a in (peek(argv, "--agents") or "dipole").split(",") if a in AGENTS] or ["dipole"]

    @functools.cached_property
    def train_config(self) -> type:
        return config_options([get_agent(self.agent)[1]], build_config(self.agent, self.env, self.preset, self.form))

    @functools.cached_property
    def checkpoint_config(self):
        return checkpoint_config_class(self.checkpoint)

    @functools.cached_property
    def eval_config(self) -> type:
        return config_options([self.checkpoint_config], note="None: the checkpoint's value; eval changes only "
                                                              "sampling fields")

    @functools.cached_property
    def finetune_config(self) -> type:
        return config_options([self.checkpoint_config], note="None: the checkpoint's value")

    @functools.cached_property
    def bench_config(self) -> type:
        return config_options([get_agent(a)[1] for a in self.bench_agents], note="None: each agent's value for the "
                                                                                 "suite")

    @functools.cached_property
    def sweep_config(self) -> type:
        return config_options([get_agent(self.agent)[1]], note="None: the agent's value for the suite; fixed at "
                                                               "every grid point")
