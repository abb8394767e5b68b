"""A results file that benchmark scripts fill one evaluation at a time, so a killed script resumes where it stopped.

`ResultsCache(path, settings)` keeps `{"settings": ..., "evals": {key: row}, ...}` in one JSON file. An evaluation
is computed once (`cached(key, fn)`) and written at once, atomically; several processes may fill one file (each
write is a read-modify-write under a file lock, so none loses another's rows). A file made with other settings is
refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable

from dipole.errors import UsageError
from dipole.storage import atomic_write_json


class ResultsCache:
    def __init__(self, path: str, settings: dict, log=lambda msg: print(msg, flush=True)):
        self.path = path
        self.log = log
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        settings = json.loads(json.dumps(settings))  # as it will read back
        self.results = self._read()
        if self.results.get("settings") != settings:
            if self.results.get("evals"):
                raise UsageError(f"{path} holds results made with other settings ({self.results.get('settings')}, "
                                 f"not {settings}); use another --out or remove it")
            self.results = {"settings": settings, "evals": {}}

    def _read(self) -> dict:
        if not os.path.exists(self.path):
            return {}
        try:
            with open(self.path) as f:
                return json.load(f)
        except json.JSONDecodeError as e:
            raise UsageError(f"{self.path} is not valid JSON ({e}); remove it to evaluate again") from e

    @contextlib.contextmanager
    def _lock(self):
        with open(os.path.join(os.path.dirname(os.path.abspath(self.path)), ".results.lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def evals(self) -> dict:
        return self.results["evals"]

    def save(self, **changes) -> None:
        """Write the file with `changes` set at its top level, keeping every row another process wrote meanwhile."""
        with self._lock():
            on_disk = self._read()
            if on_disk.get("settings") == self.results["settings"]:
                self.results["evals"] = {**on_disk.get("evals", {}), **self.results["evals"]}
                for k, v in on_disk.items():
                    self.results.setdefault(k, v)
            self.results.update(changes)
            atomic_write_json(self.path, self.results)

    def cached(self, key: str, fn: Callable, describe: Callable | None = None):
        """The row stored under `key`, or fn()'s, stored at once; `describe(row)` is logged with the time it took."""
        if key not in self.evals:
            t = time.time()
            self.evals[key] = fn()
            if describe is not None:
                self.log(f"  {key}: {describe(self.evals[key])} ({time.time() - t:.0f} s)")
            self.save()
        return self.evals[key]
