import os
import shutil
import tempfile

import numpy as np
import pytest

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# two CPU devices, as `dipole` gives a 2-core machine: populations are split over them (and padded when odd)
os.environ.setdefault("JAX_NUM_CPU_DEVICES", "2")
# One JAX compilation cache for the whole run, made here in the first process (pytest's, before its xdist workers
# start) and inherited by the workers, by the `dipole` commands tests start and by Ray's workers: many tests compile
# the same small programs, and a cached executable is the same compiled code, so no number changes. A cache the
# caller set is used as it is and never removed.
_OWN_JAX_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_JAX_CACHE = tempfile.mkdtemp(prefix="dipole-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_JAX_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # tests' programs compile in well under 1 s
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_sessionfinish(session):
    if _OWN_JAX_CACHE:  # only the process that made it
        shutil.rmtree(_OWN_JAX_CACHE, ignore_errors=True)


def benchmark_script(name):
    """benchmarks/NAME.py as a module (its folder first on sys.path while it loads, as `python benchmarks/NAME.py`)."""
    import importlib.util
    import sys

    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


@pytest.fixture(scope="session")
def smoke_bench(tmp_path_factory, worker_id):
    """A finished `dipole bench --suite smoke --agents dipole,bc --seeds 2 --workers 2` folder, made once per test
    run: the first xdist worker that asks makes it under a lock, the others wait for it and read it. Tests that
    change a bench folder work on a copy (`copy_bench`)."""
    import fcntl

    from dipole.bench.runner import run_bench

    # the folder all of this run's workers share (pytest-N/), or this process's own without xdist
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    out = root / "smoke-bench"
    with open(root / "smoke-bench.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "results.json").exists():
            shutil.rmtree(out, ignore_errors=True)  # a worker that died while making it
            run_bench("smoke", ["dipole", "bc"], 2, out_dir=str(out), workers=2, log=lambda *_: 0)
    return out


def copy_bench(folder, to):
    """A copy of a bench folder, to change without touching the shared one."""
    shutil.copytree(folder, to)
    return str(to)


@pytest.fixture
def short_episodes(monkeypatch):
    """Evaluation environments made in this process end their episodes after 200 steps (pointmaze's run 1000): for
    tests that compare two ways of evaluating the same episodes, whatever their length."""
    import gymnasium

    from dipole.runners import evaluation

    real = evaluation.make_env
    monkeypatch.setattr(evaluation, "make_env", lambda name: gymnasium.wrappers.TimeLimit(real(name), 200))


TINY = dict(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32), batch_size=64, flow_steps=4)


@pytest.fixture(scope="session")
def pointmaze_files(tmp_path_factory):
    """A few episodes of pointmaze-medium-navigate-v0, generated here in OGBench's file layout."""
    from dipole.datagen.ogbench import generate_ogbench

    out = tmp_path_factory.mktemp("ogbench")
    info = generate_ogbench("pointmaze-medium-navigate-v0", episodes=4, workers=1, seed=0, out_dir=str(out),
                            progress=False)
    return info


def random_transitions(n=512, obs_dim=3, act_dim=2, seed=0):
    r = np.random.default_rng(seed)
    return {
        "observations": r.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": r.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": r.normal(size=n).astype(np.float32),
        "masks": (r.uniform(size=n) > 0.05).astype(np.float32),
        "next_observations": r.normal(size=(n, obs_dim)).astype(np.float32),
    }
