"""dipole: offline RL with flow policies and an inference-time greediness knob.

Subcommands: quickstart, train, eval, finetune, bench, sweep, data. `dipole SUBCOMMAND --help` lists every option with its
type and default; agent hyperparameters are `--config.FIELD VALUE` in train, eval, finetune and bench alike.
"""

import sys

import tyro

from dipole.cli import bench, data, evaluate, finetune, train
from dipole.cli.options import DEFAULT_OMEGAS, BackendArgs, Context, make_backend, parse_grid  # noqa: F401
from dipole.errors import DipoleError

# one module per subcommand or group: `command(ctx)` gives its option dataclasses, ACTIONS what each one runs
MODULES = (data, train, evaluate, finetune, bench)
ACTIONS = {"quickstart": data.cmd_quickstart, "train": train.cmd_train, "eval": evaluate.cmd_eval,
           "finetune": finetune.cmd_finetune, "bench": bench.cmd_bench, "sweep": bench.cmd_sweep, "data": data.cmd_data}
ORDER = ("quickstart", "train", "eval", "finetune", "bench", "sweep", "data")


def make_commands(argv: list[str]) -> dict[str, type]:
    """The subcommands' option dataclasses, their config defaults read from argv first (`Context`), so `--help`
    shows the values that will apply."""
    ctx = Context(argv)
    commands = {}
    for module in MODULES:
        commands.update(module.command(ctx))
    return {name: commands[name] for name in ORDER}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    from dipole.runners.devices import use_cpu_cores

    use_cpu_cores()
    commands = make_commands(argv)
    try:
        args = tyro.extras.subcommand_cli_from_dict(commands, prog="dipole", description=__doc__, args=argv)
        ACTIONS[next(name for name, cls in commands.items() if isinstance(args, cls))](args)
    except DipoleError as e:  # the library's own checks: one line; anything else is a bug and keeps its traceback
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
