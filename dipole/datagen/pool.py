"""A process pool with a progress bar, for data generation."""

from __future__ import annotations


def parallel_map(fn, jobs: list, workers: int = 1, desc: str = "", unit: str = "it", progress: bool = True,
                 total: int | None = None, weight=None):
    """`[fn(job) for job in jobs]` in `workers` spawned processes (in order), with a progress bar.

    `total` and `weight(result)` let the bar count something finer than jobs (e.g. episodes in a batch).
    """
    import multiprocessing as mp

    from tqdm import tqdm

    workers = max(1, min(int(workers), len(jobs)))
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    out = []
    bar = tqdm(total=len(jobs) if total is None else total, desc=desc, unit=unit, disable=not progress)
    try:
        for result in (pool.imap(fn, jobs) if pool else map(fn, jobs)):
            out.append(result)
            bar.update(weight(result) if weight else 1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return out
