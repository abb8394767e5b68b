"""The Ray backend of `dipole bench` and `dipole sweep`, on a local Ray instance of 2 CPUs: the same numbers as the
local backend, a worker killed mid-run retried and resumed to the same numbers, a sweep's table."""

import dataclasses
import glob
import json
import os
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[dev]' installs it)")

from dipole.bench.backends import RayBackend  # noqa: E402
from dipole.bench.runner import run_bench  # noqa: E402
from dipole.bench.suites import SUITES  # noqa: E402
from dipole.cli import main  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2 ** 20, log_to_driver=False,
             configure_logging=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def _results(out):
    """Every result.json of a bench folder (by path relative to it), without the population folder's path."""
    found = {}
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "*", "result.json"))):
        r = json.load(open(path))
        r.pop("population", None)
        found[os.path.relpath(path, out)] = r
    return found


def test_ray_backend_gives_the_local_backends_numbers(smoke_bench, tmp_path):
    lines = []  # the local folder: `--suite smoke --agents dipole,bc --seeds 2`, evaluated by 2 worker processes
    remote = run_bench("smoke", ["dipole", "bc"], 2, out_dir=str(tmp_path / "ray"), workers=1, log=lines.append,
                       backend=RayBackend(cpus_per_run=2))
    assert any("ray: [2/2]" in line for line in lines)
    local = json.load(open(smoke_bench / "results.json"))
    assert json.loads(json.dumps(remote["agents"])) == local["agents"]  # the tables, to the last digit
    a, b = _results(str(smoke_bench)), _results(str(tmp_path / "ray"))
    assert len(a) == 4 and a == b  # every run's headline and sweep rows, bit for bit
    assert open(smoke_bench / "results.md").read() == open(tmp_path / "ray" / "results.md").read()


def test_a_killed_worker_is_retried_and_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    # long enough (checkpoints every 100 of 1000 updates, polled every 20 ms) that the kill lands mid-training
    suite = dataclasses.replace(SUITES["smoke"], name="smoke-long", steps=1000, sweep_candidates=(1,))
    monkeypatch.setitem(SUITES, "smoke-long", suite)
    out = str(tmp_path / "ray")
    lines, errors = [], []

    def drive():
        try:
            run_bench("smoke-long", ["dipole"], 2, out_dir=out, workers=1, log=lines.append,
                      backend=RayBackend(cpus_per_run=2, max_retries=2))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    driver = threading.Thread(target=drive)
    driver.start()
    deadline, killed, step = time.time() + 240, None, None
    while killed is None and time.time() < deadline and driver.is_alive():
        ckpts = sorted(glob.glob(os.path.join(out, "populations", "*", "checkpoints", "ckpt-*.dpl")))
        locks = glob.glob(os.path.join(out, "populations", "*", ".lock"))
        if ckpts and locks:
            pid = open(locks[0]).read().strip()
            step = int(os.path.basename(ckpts[-1])[5:13])
            if pid:
                killed = int(pid)
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    driver.join(timeout=300)
    assert not errors, errors
    assert killed is not None and step < 1000, "the worker was not killed during training"
    finished = [line for line in lines if "ray: [1/1]" in line]
    assert finished and f"(pid {killed})" not in finished[0]  # another worker finished the job
    run_bench("smoke-long", ["dipole"], 2, out_dir=str(tmp_path / "local"), workers=1, log=lambda *_: 0)
    assert _results(out) == _results(str(tmp_path / "local"))
    assert (json.load(open(os.path.join(out, "results.json")))["agents"]
            == json.load(open(tmp_path / "local" / "results.json"))["agents"])


def test_sweep_over_a_two_point_grid_on_ray_writes_its_table(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    main(["sweep", "--suite", "smoke", "--grid", "beta=1,3", "--seeds", "2", "--out", out, "--workers", "1",
          "--backend", "ray", "--cpus-per-run", "1"])
    text = capsys.readouterr().out
    summary = json.load(open(os.path.join(out, "sweep.json")))
    assert [p["point"] for p in summary["points"]] == [{"beta": 1.0}, {"beta": 3.0}]
    assert all(p["score"] is not None and len(p["score"]) == 2 and not p["missing"] for p in summary["points"])
    table = open(os.path.join(out, "sweep.md")).read()
    assert "| beta | score |" in table and "\n| 1 | " in table and "\n| 3 | " in table and table.strip() in text
    assert os.path.exists(os.path.join(out, "sweep.png"))
    for label in ("beta=1", "beta=3"):  # each point is a bench folder made with its value
        bench = json.load(open(os.path.join(out, "points", label, "bench.json")))
        assert bench["overrides"] == {"beta": float(label[5:])}
        runs = _results(os.path.join(out, "points", label))
        assert len(runs) == 2 and all(r["config"]["beta"] == float(label[5:]) for r in runs.values())
