"""`dipole sweep` and the backend options: grid values typed as `--config.FIELD` types them, bad input refused in one
line before any data is made, and a sweep on the local backend (the Ray one is in test_ray.py)."""

import builtins
import json
import os

import pytest

from dipole.bench.backends import LocalBackend, RayBackend, import_ray
from dipole.bench.sweep import grid_points, point_label, run_sweep
from dipole.cli import BackendArgs, main, make_backend, parse_grid
from dipole.errors import MissingDependencyError, RunFolderError, UsageError


def test_grid_values_are_typed_as_the_cli_types_config_fields():
    grid = parse_grid("dipole", ("beta=1,3,10", "adv-norm=none,running_std", "actor_hidden_dims=64 64,128 128 128",
                                 "shared_actor=True,False", "num_qs=2,4"))
    assert grid == {"beta": [1.0, 3.0, 10.0], "adv_norm": ["none", "running_std"],
                    "actor_hidden_dims": [(64, 64), (128, 128, 128)], "shared_actor": [True, False],
                    "num_qs": [2, 4]}
    assert all(type(v) is float for v in grid["beta"])
    points = grid_points({"beta": [1.0, 3.0], "expectile": [0.7, 0.9]})
    assert [point_label(p) for p in points] == ["beta=1,expectile=0.7", "beta=1,expectile=0.9",
                                                "beta=3,expectile=0.7", "beta=3,expectile=0.9"]
    assert point_label({"actor_hidden_dims": (64, 64)}) == "actor_hidden_dims=64-64"


@pytest.mark.parametrize("spec, message", [
    ("beta=1,abc", "--grid beta: 'abc' is not a value of type float"),
    ("gamma", "--grid 'gamma': write FIELD=V1,V2,..."),
    ("betta=1,2", "dipole has no config field 'betta'"),
    ("beta=", "write FIELD=V1,V2"),
    ("num_qs=2,2.5", "--grid num_qs: '2.5' is not a value of type int"),
])
def test_bad_grid_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(UsageError) as e:
        parse_grid("dipole", (spec,))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_sweeps_are_refused_before_any_data(tmp_path):
    out = str(tmp_path / "s")
    with pytest.raises(UsageError, match="cube-double-mini is a test suite.*--any-suite"):
        run_sweep("cube-double-mini", "dipole", {"beta": [1.0]}, 1, out_dir=out)
    with pytest.raises(UsageError, match="repeats a value"):
        run_sweep("smoke", "dipole", {"beta": [1.0, 1.0]}, 1, out_dir=out)
    with pytest.raises(UsageError, match=r"beta.*both swept"):
        run_sweep("smoke", "dipole", {"beta": [1.0, 2.0]}, 1, out_dir=out, overrides={"beta": 3.0})
    with pytest.raises(UsageError, match="config.selection"):  # a bad value at one point fails before anything
        run_sweep("smoke", "dipole", {"selection": ["argmax", "best"]}, 1, out_dir=out)
    assert not os.path.exists(out)


def test_backend_options(monkeypatch):
    assert isinstance(make_backend(BackendArgs()), LocalBackend)
    with pytest.raises(UsageError, match="--address, --gpus-per-run apply to --backend ray only"):
        make_backend(BackendArgs(address="auto", gpus_per_run=1.0))
    backend = make_backend(BackendArgs(backend="ray", storage="/shared/x", gpus_per_run=0.5))
    assert isinstance(backend, RayBackend) and backend.root == "/shared/x" and backend.gpus_per_run == 0.5
    with pytest.raises(UsageError, match="--gpus-per-run must be a fraction"):
        RayBackend(gpus_per_run=1.5)
    with pytest.raises(UsageError, match="--cpus-per-run must be > 0"):
        RayBackend(cpus_per_run=0)
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "ray" else real_import(name, *a, **k))
    with pytest.raises(MissingDependencyError, match=r"pip install -e '.\[ray\]'"):
        import_ray()


def test_local_sweep_resumes_and_refuses_another_agent_in_its_folder(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    args = ["sweep", "--suite", "smoke", "--grid", "expectile=0.7,0.9", "--seeds", "1", "--out", out,
            "--workers", "1"]
    main(args)
    summary = json.load(open(os.path.join(out, "sweep.json")))
    assert [p["label"] for p in summary["points"]] == ["expectile=0.7", "expectile=0.9"]
    assert "| expectile | score |" in capsys.readouterr().out
    stamp = os.path.getmtime(os.path.join(out, "points", "expectile=0.7", "runs",
                                          "pointmaze-medium-navigate-singletask-task1-v0", "dipole", "seed0",
                                          "result.json"))
    main(args)  # finished points are not run again
    assert os.path.getmtime(os.path.join(out, "points", "expectile=0.7", "runs",
                                         "pointmaze-medium-navigate-singletask-task1-v0", "dipole", "seed0",
                                         "result.json")) == stamp
    with pytest.raises(RunFolderError, match="agent = 'dipole'.*'iql'"):
        run_sweep("smoke", "iql", {"expectile": [0.7]}, 1, out_dir=out, log=lambda *_: 0)
