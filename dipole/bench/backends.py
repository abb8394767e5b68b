"""Where a benchmark's population programs run: in this process (`LocalBackend`, the default) or as Ray tasks
(`RayBackend`, on this machine or a cluster).

A bench or a sweep is cut into `PopulationJob`s: one agent's unfinished (task, seed) runs of one bench folder,
trained as one population program, evaluated, and written as result.json files (dipole.bench.runner). A job reads
and writes only inside its bench folder and resumes from its population checkpoint, so a job that dies is simply
run again. Its numbers depend on the seeds and on the devices JAX sees, not on where it runs: a Ray task gets one
JAX CPU device per CPU it declares (`cpus_per_run`), as the local backend gets one per core, so on the same kind of
machine both backends write the same numbers.

Ray is an optional extra (`pip install -e '.[ray]'`); nothing here imports it unless the Ray backend runs.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, field

from dipole.bench.suites import Suite
from dipole.errors import DipoleError, MissingDependencyError, RunFolderError, UsageError
from dipole.runners.offline import fmt_seconds


@dataclass(frozen=True)
class PopulationJob:
    """One agent's (task, seed) runs `members` of the bench folder `out_dir`, trained as one population."""

    suite: Suite
    agent: str
    members: tuple  # of dipole.runners.population.Member
    out_dir: str
    train_file: str
    overrides: dict = field(default_factory=dict)
    eval_workers: int = 1  # processes stepping the evaluation environments (the results are the same for any number)

    def label(self) -> str:
        return f"{self.agent} x{len(self.members)} ({os.path.basename(os.path.normpath(self.out_dir))})"


class LocalBackend:
    """Every job in this process, one after another (each one uses every core through its JAX devices)."""

    name = "local"
    root = "runs"  # default parent of bench folders

    def run(self, jobs: list[PopulationJob], execute, log=print) -> None:
        """`execute(job, log, progress)` each job (dipole.bench.runner.run_population_job)."""
        start = time.time()
        for i, job in enumerate(jobs):
            if len(jobs) > 1:
                eta = f", ETA {fmt_seconds((time.time() - start) / i * (len(jobs) - i))}" if i else ""
                log(f"[job {i + 1}/{len(jobs)}] {job.label()}{eta}")
            execute(job, log, True)


@dataclass
class RayBackend:
    """Each job a Ray task declaring `cpus_per_run` CPUs and `gpus_per_run` GPUs (fractions allowed: 0.5 puts two
    jobs on one GPU). A task whose worker dies (killed, node lost) is run again up to `max_retries` times and resumes
    from the job's last checkpoint; a job that fails with bad input is not retried and its error is raised here.

    `address`: None starts Ray on this machine (or uses the one this process already started); "auto" joins the
    cluster `ray start` made on this machine; "HOST:PORT" joins that head node. `storage`: a folder every node can
    read and write; bench folders default to STORAGE/bench/SUITE (the local default is runs/bench/SUITE).
    """

    address: str | None = None
    cpus_per_run: float = float(os.cpu_count() or 1)  # as many JAX CPU devices as the local backend uses here
    gpus_per_run: float = 0.0
    max_retries: int = 3
    storage: str | None = None

    name = "ray"

    def __post_init__(self):
        if not self.cpus_per_run > 0:
            raise UsageError(f"--cpus-per-run must be > 0, got {self.cpus_per_run}")
        if self.gpus_per_run < 0 or (self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run)):
            raise UsageError(f"--gpus-per-run must be a fraction in [0, 1] or a whole number, got {self.gpus_per_run}")
        if self.max_retries < 0:
            raise UsageError(f"--max-retries must be >= 0, got {self.max_retries}")

    @property
    def root(self) -> str:
        return self.storage or "runs"

    def run(self, jobs: list[PopulationJob], execute, log=print) -> None:
        """`execute(job, log, progress)` each job in a Ray task (`execute` must be a module-level function)."""
        if not jobs:
            return
        ray = import_ray()
        started = self._connect(ray, log)
        try:
            self._run(ray, jobs, execute, log)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray, log) -> bool:
        """Start or join Ray; -> whether this call started it (and so shuts it down)."""
        if ray.is_initialized():
            return False
        kwargs = dict(include_dashboard=False, log_to_driver=True, configure_logging=False)
        if self.address is None:  # a local instance on the loopback address, with a small object store (jobs pass
            kwargs.update(object_store_memory=256 * 2 ** 20, _node_ip_address="127.0.0.1")  # paths, not arrays)
        try:
            ray.init(address=self.address, **kwargs)
        except ConnectionError as e:
            raise UsageError(f"--address {self.address}: no Ray cluster found ({e}); start one with `ray start "
                             "--head` (see docs/distributed.md), or leave --address out to start Ray on this "
                             "machine") from None
        res = ray.cluster_resources()
        log(f"ray: {len(ray.nodes())} node(s), {res.get('CPU', 0):g} CPU(s), {res.get('GPU', 0):g} GPU(s); each job "
            f"takes {self.cpus_per_run:g} CPU(s) and {self.gpus_per_run:g} GPU(s)")
        if self.cpus_per_run > res.get("CPU", 0) or self.gpus_per_run > res.get("GPU", 0):
            raise UsageError(f"no node of this Ray cluster has {self.cpus_per_run:g} CPU(s) and "
                             f"{self.gpus_per_run:g} GPU(s) free for one job (cluster: {res.get('CPU', 0):g} CPUs, "
                             f"{res.get('GPU', 0):g} GPUs); lower --cpus-per-run / --gpus-per-run")
        return True

    def _run(self, ray, jobs, execute, log):
        task = ray.remote(max_calls=1)(run_job_in_worker).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=self.max_retries,
            retry_exceptions=False, name="dipole-population")
        devices = max(1, math.ceil(self.cpus_per_run))
        refs = {task.remote(job, execute, devices, self.gpus_per_run): job for job in jobs}
        log(f"ray: submitted {len(jobs)} population job(s): " + ", ".join(j.label() for j in jobs))
        pending, start, done = list(refs), time.time(), 0
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            job = refs[finished[0]]
            try:
                out = ray.get(finished[0])
            except ray.exceptions.RayTaskError as e:
                for ref in pending:
                    ray.cancel(ref)
                if isinstance(e.cause, DipoleError):
                    raise e.cause from None
                raise
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
                for ref in pending:
                    ray.cancel(ref)
                raise JobFailedError(f"ray: the job {job.label()} lost its worker {self.max_retries + 1} time(s) "
                                     f"({type(e).__name__}); its checkpoints in {job.out_dir} are kept: run the same "
                                     "command again to resume it (or raise --max-retries)") from None
            done += 1
            eta = (time.time() - start) / done * len(pending)
            log(f"ray: [{done}/{len(jobs)}] {job.label()} finished on {out['host']} (node {out['node']}, pid "
                f"{out['pid']}) in {fmt_seconds(out['seconds'])}" + (f"; ETA {fmt_seconds(eta)}" if pending else ""))


class JobFailedError(DipoleError, RuntimeError):
    """A distributed job could not be completed (its worker died more often than retries allow)."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("the Ray backend needs Ray: pip install -e '.[ray]' (or pip install "
                                     "'ray>=2.9')") from None
    return ray


IN_USE_WAIT_S = 60  # a retried job waits this long for a folder still held by a worker that is being stopped


def run_job_in_worker(job: PopulationJob, execute, cpu_devices: int, gpus: float) -> dict:
    """The body of a Ray task (a fresh worker process each time: max_calls=1): JAX gets `cpu_devices` CPU devices
    (as the local backend gets one per core), or the GPU Ray assigned; then the job runs as it runs locally."""
    import jax

    jax.config.update("jax_num_cpu_devices", cpu_devices)
    if not gpus:
        jax.config.update("jax_platforms", "cpu")
    elif gpus < 1:  # a shared GPU: take no more than this task's share of its memory
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.95 * gpus:.3f}"
    if not os.path.exists(os.path.join(job.out_dir, "bench.json")):
        raise UsageError(f"the Ray worker on {socket.gethostname()} cannot see {os.path.abspath(job.out_dir)}/"
                         "bench.json: give --storage a folder every node of the cluster shares (NFS, a shared "
                         "disk)")
    start, host = time.time(), socket.gethostname()

    def log(msg):
        print(msg, flush=True)

    deadline = time.time() + IN_USE_WAIT_S
    while True:
        try:
            execute(job, log, False)
            break
        except RunFolderError as e:  # e.g. the worker of a killed driver, not yet stopped, still holds the folder
            if "is in use by pid" not in str(e) or time.time() > deadline:
                raise
            time.sleep(2)
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
    except Exception:  # not in a Ray worker (called directly)
        node = "-"
    return {"host": host, "node": node, "pid": os.getpid(), "seconds": time.time() - start}
