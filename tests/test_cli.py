"""The typed command line: help texts, override syntax, honest defaults and outputs, quiet by default."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from dipole.agents import AGENTS, build_config
from dipole.cli import main
from dipole.runners.logging import read_csv
from dipole.runners.offline import cpu_warning

TASK = "pointmaze-medium-navigate-singletask-task1-v0"


def help_text(argv, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one option per line, nothing wrapped
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def option_block(out: str, flag: str) -> str | None:
    """The help of one option: from its flag to the next option (tyro may put the text on the next line)."""
    lines = out.splitlines()
    for i, ln in enumerate(lines):
        if f"{flag} " in ln.replace("│", " ") + " ":
            block = [ln]
            for nxt in lines[i + 1:]:
                if nxt.replace("│", " ").strip().startswith("--") or "─" in nxt:
                    break
                block.append(nxt)
            return " ".join(" ".join(b.replace("│", " ").split()) for b in block)
    return None


def test_top_level_help_lists_every_subcommand(capsys, monkeypatch):
    out = help_text([], capsys, monkeypatch)
    for name in ("quickstart", "train", "eval", "finetune", "bench", "data"):
        assert f"• {name}" in out


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_train_help_shows_every_config_field_with_its_type_and_default(agent, capsys, monkeypatch):
    out = help_text(["train", "--agent", agent], capsys, monkeypatch)
    config = build_config(agent, None, "paper")
    for f in dataclasses.fields(config):
        line = option_block(out, f"--config.{f.name.replace('_', '-')}")
        assert line is not None, f"--config.{f.name} missing from `dipole train --agent {agent} --help`"
        value = getattr(config, f.name)
        shown = " ".join(map(str, value)) if isinstance(value, tuple) else str(value) if value != "" else "''"
        assert f"(default: {shown})" in line, line
    for option in ("--steps INT", "--seed INT", "--run-dir", "--eval-every INT", "--agent {", "--preset {",
                   "--tensorboard", "--wandb"):
        assert option in out
    assert "(default: 1000000)" in out and "(default: paper)" in out


def test_train_help_shows_the_defaults_of_the_chosen_preset_and_task(capsys, monkeypatch):
    out = help_text(["train", "--agent", "fql", "--preset", "small", "--env", "cube-double-play-singletask-task2-v0"],
                    capsys, monkeypatch)
    assert "(default: 300.0)" in option_block(out, "--config.alpha")
    assert "(default: 128 128 128)" in option_block(out, "--config.actor-hidden-dims")


def test_eval_and_bench_help_show_their_config_options(capsys, monkeypatch):
    assert "--config.flow-steps" in help_text(["eval"], capsys, monkeypatch)
    out = help_text(["bench", "--agents", "dipole,fql"], capsys, monkeypatch)
    assert "--config.alpha" in out and "--config.beta" in out and "[fql]" in out


def test_cpu_warning_names_the_small_preset():
    paper = build_config("dipole", None, "paper")
    text = cpu_warning(paper, 1_000_000)
    assert text.startswith("warning:") and "--preset small" in text
    assert cpu_warning(paper, 100_000) is None
    assert cpu_warning(build_config("dipole", None, "small"), 1_000_000) is None


@pytest.fixture(scope="module")
def trained(pointmaze_files, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("cli") / "run")
    main(["train", "--env", TASK, "--dataset", pointmaze_files["train_path"], "--preset", "tiny", "--steps", "200",
          "--log-every", "100", "--save-every", "100", "--eval-episodes", "2", "--run-dir", run,
          "--config.flow_steps=3", "--config.batch-size", "32", "--config.selection", "tilt"])
    return run


def test_short_run_evaluates_at_its_final_step(trained):
    # --eval-every keeps its default (100000) > steps: the final step is evaluated all the same
    evals = read_csv(os.path.join(trained, "eval.csv"))
    assert [e["step"] for e in evals] == [200] and evals[0]["episodes"] == 2
    summary = json.load(open(os.path.join(trained, "summary.json")))
    assert summary["final_evaluation"]["step"] == 200
    assert summary["config"]["flow_steps"] == 3 and summary["config"]["batch_size"] == 32
    metrics = read_csv(os.path.join(trained, "metrics.csv"))
    assert "val/q_loss" in metrics[0] and "val/actor_pos_loss" in metrics[0]  # OGBench's -val split, every row


def test_closing_line_lists_only_files_that_exist(pointmaze_files, tmp_path, capsys):
    run = str(tmp_path / "noeval")
    main(["train", "--env", TASK, "--dataset", pointmaze_files["train_path"], "--preset", "tiny", "--steps", "100",
          "--log-every", "100", "--save-every", "100", "--eval-episodes", "0", "--run-dir", run])
    out = capsys.readouterr().out
    closing = [ln for ln in out.splitlines() if ln.startswith("wrote ")][-1]
    assert "metrics.csv" in closing and "eval.csv" not in closing and "checkpoints/ (1 file)" in closing
    assert not os.path.exists(os.path.join(run, "eval.csv"))
    start = next(ln for ln in out.splitlines() if ln.startswith("training dipole on"))
    assert "networks 2x32 (preset tiny)" in start and "device cpu" in start and "of training" in start


def test_eval_never_overwrites_an_earlier_sweep(trained, capsys):
    args = ["eval", "--checkpoint", trained, "--omega", "2", "--num-candidates", "1", "3", "--episodes", "1",
            "--config.flow-steps", "2"]
    main(args)
    main(args)
    out = capsys.readouterr().out
    first, second = (os.path.join(trained, f"eval-step00000200-{n}") for n in (1, 2))
    rows = json.load(open(first + ".json"))
    # at each K > 1: argmax and the checkpoint's own rule (tilt, as it was trained)
    assert [(r["omega"], r["num_candidates"], r["selection"]) for r in rows] == [
        (2.0, 1, None), (2.0, 3, "argmax"), (2.0, 3, "tilt")]
    assert os.path.exists(second + ".json") and os.path.exists(second + ".png")
    assert f"wrote {first}.json" in out and f"wrote {second}.json" in out
    assert "| omega | K | selection | success rate ± s.d. | return ± s.d. |" in out


def test_eval_refuses_a_training_field(trained):
    with pytest.raises(SystemExit, match=r"error: --config.beta changes training, not sampling; `dipole eval` can "
                                         r"change \['flow_steps', 'omega', 'num_candidates', 'selection'\]"):
        main(["eval", "--checkpoint", trained, "--config.beta", "3"])


def test_bench_overrides_are_checked_against_the_agents(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # the CLI offers only the selected agents' fields
        main(["bench", "--suite", "smoke", "--agents", "dipole", "--report", "--out", str(tmp_path),
              "--config.alpha", "3"])
    assert e.value.code == 2 and "Unrecognized options: --config.alpha" in capsys.readouterr().err
    from dipole.bench.runner import run_bench

    with pytest.raises(ValueError, match=r"config field\(s\) \['alpha'\] belong to none of the agents \['dipole'\]"):
        run_bench("smoke", ["dipole"], 1, out_dir=str(tmp_path), report_only=True, overrides={"alpha": 3})


def test_bad_values_get_one_error_line(pointmaze_files, tmp_path):
    with pytest.raises(SystemExit, match=r"error: log_every must be >= 1, got 0"):
        main(["train", "--env", TASK, "--dataset", pointmaze_files["train_path"], "--log-every", "0",
              "--run-dir", str(tmp_path)])


QUIET_SCRIPT = """
import sys, warnings
warnings.simplefilter("default")
from dipole.cli import main
main(sys.argv[1:])
"""


def test_data_commands_print_no_display_or_box_precision_warning(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    for argv in (["data", "ogbench", "cube-single-play-v0", "--episodes", "1", "--workers", "1"],
                 ["data", "dmc", "walker", "--steps", "200", "--explorers", "2", "--workers", "1"]):
        proc = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, *argv, "--out", str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        for noise in ("DISPLAY", "GLFW", "precision lowered", "Warning", "WARN"):
            assert noise not in proc.stderr, f"`dipole {' '.join(argv)}` printed {noise!r}:\n{proc.stderr}"


ENV_SCRIPT = """
import warnings
warnings.simplefilter("always")
import numpy as np
from dipole.envs import make_env
env = make_env("cube-single-play-singletask-task1-v0")
for seed in (0, 1):
    env.reset(seed=seed)  # OGBench's cube env builds a new float64-bounded action Box on every reset
    env.step(np.zeros(env.action_space.shape, np.float32))
print("ok")
"""


def test_evaluation_episodes_print_no_box_precision_warning():
    proc = subprocess.run([sys.executable, "-c", ENV_SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert "precision lowered" not in proc.stderr, proc.stderr


NO_EGL_SCRIPT = """
import ctypes, os


class NoEGL(ctypes.CDLL):  # a machine without libEGL
    def __init__(self, name, *args, **kwargs):
        if name and "libEGL" in str(name):
            raise OSError(f"{name}: cannot open shared object file")
        super().__init__(name, *args, **kwargs)


ctypes.CDLL = NoEGL
import numpy as np
import dipole
print(os.environ["MUJOCO_GL"])
from dipole.envs import make_env
for name in ("pointmaze-medium-navigate-singletask-task1-v0", "dmc-walker-walk"):
    env = make_env(name)
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, np.float32))
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MUJOCO_GL is chosen on Linux only")
def test_headless_mujoco_gl_is_egl_where_its_library_loads_else_rendering_off():
    from dipole._quiet import headless_mujoco_gl

    def no_egl(name):
        raise OSError(f"{name}: cannot open shared object file")

    assert headless_mujoco_gl(lambda name: object()) == "egl"
    assert headless_mujoco_gl(no_egl) == "disable"
    # without libEGL (a GPU server image without it: `import mujoco` failed there on EGL), environments still run
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    proc = subprocess.run([sys.executable, "-c", NO_EGL_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == ["disable", "ok"], proc.stderr
    # a MUJOCO_GL the user chose is kept
    proc = subprocess.run([sys.executable, "-c", "import os, dipole; print(os.environ['MUJOCO_GL'])"],
                          env={**env, "MUJOCO_GL": "osmesa"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "osmesa", proc.stderr
