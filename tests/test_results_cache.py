"""dipole.bench.cache.ResultsCache: the benchmark scripts' results file (highway_omega.py, highway_tradeoff.py)."""

import json

import pytest

from dipole.bench.cache import ResultsCache
from dipole.errors import UsageError

SETTINGS = {"episodes": 3, "seeds": [0, 1]}


def test_an_evaluation_is_computed_once_and_read_back_by_a_later_process(tmp_path):
    path = str(tmp_path / "out" / "results.json")
    calls = []
    first = ResultsCache(path, SETTINGS, log=calls.append)
    assert first.cached("a", lambda: {"x": 1.5}, lambda r: f"x={r['x']}") == {"x": 1.5}
    assert calls == ["  a: x=1.5 (0 s)"]
    again = ResultsCache(path, SETTINGS, log=calls.append)
    assert again.cached("a", lambda: pytest.fail("recomputed a stored evaluation")) == {"x": 1.5}
    assert json.load(open(path)) == {"settings": SETTINGS, "evals": {"a": {"x": 1.5}}}


def test_two_writers_of_one_file_keep_each_others_rows(tmp_path):
    path = str(tmp_path / "results.json")
    a, b = ResultsCache(path, SETTINGS), ResultsCache(path, SETTINGS)  # both opened before either wrote
    a.cached("from a", lambda: 1)
    b.cached("from b", lambda: 2)
    a.save(seconds=7)
    assert json.load(open(path)) == {"settings": SETTINGS, "evals": {"from a": 1, "from b": 2}, "seconds": 7}


def test_a_file_made_with_other_settings_is_refused_not_overwritten(tmp_path):
    path = str(tmp_path / "results.json")
    ResultsCache(path, SETTINGS).cached("a", lambda: 1)
    with pytest.raises(UsageError, match=r"results.json holds results made with other settings .*use another --out"):
        ResultsCache(path, {**SETTINGS, "episodes": 4})
    assert json.load(open(path))["evals"] == {"a": 1}
    # a file with settings but no evaluation yet is simply started again
    json.dump({"settings": {"old": True}, "evals": {}}, open(path, "w"))
    assert ResultsCache(path, SETTINGS).results == {"settings": SETTINGS, "evals": {}}


def test_a_damaged_file_is_named(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"settings": ')
    with pytest.raises(UsageError, match=r"results.json is not valid JSON .* remove it to evaluate again"):
        ResultsCache(str(path), SETTINGS)
