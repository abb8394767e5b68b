"""The offline loop gives the numbers it gave before single runs and populations became one loop: a DIPOLE run
against tests/loop_fingerprint.json, recorded by the code before the change (a population member equals its run
alone: tests/test_population.py). Every agent, alone and as a population, with evaluation episodes, is checked by
`python tests/loop_fingerprint.py --check`."""

import json

import loop_fingerprint as fp


def test_the_loop_reproduces_its_recorded_fingerprint(tmp_path, pointmaze_files):
    want = json.load(open(fp.FILE))["dipole/single"]
    got = fp.fingerprint("dipole", pointmaze_files["train_path"], str(tmp_path), False, evaluate=False)
    want.pop("eval")
    assert fp.compare(want, got) == []
