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
