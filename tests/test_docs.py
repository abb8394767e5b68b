"""The documentation site builds with `mkdocs build --strict`: every link, anchor, image and API reference resolves.

Needs the `docs` extra (installed by `.[dev]` and `.ci/run`); without it these tests are skipped, saying so.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")


def _build(root, site):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", os.path.join(root, "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, env=env, cwd=root)


def test_the_site_builds_strictly(tmp_path):
    out = _build(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    site = tmp_path / "site"
    # the README is the home page, the lab record and the API reference are pages
    assert (site / "index.html").exists() and (site / "results" / "index.html").exists()
    assert "rliable_stats" in (site / "api" / "index.html").read_text()
    # a link written for GitHub (docs/ -> ../results/) points at the site's page
    assert 'href="../results/quickstart/' in (site / "getting-started" / "index.html").read_text()


@pytest.mark.parametrize("bad, message", [
    ("[gone](no_such_page.md)", "no_such_page.md"),
    ("[gone](algorithm.md#no-such-heading)", "no-such-heading"),
    ("[gone](../results/no_such_record.md)", "no_such_record.md"),
])
def test_a_broken_link_or_anchor_fails_the_build(tmp_path, bad, message):
    copy = tmp_path / "repo"
    for name in ("docs", "results", "dipole"):
        shutil.copytree(os.path.join(ROOT, name), copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("mkdocs.yml", "README.md", "CHANGELOG.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), copy / name)
    with open(copy / "docs" / "cli.md", "a") as f:
        f.write(f"\n{bad}\n")
    out = _build(str(copy), tmp_path / "site")
    assert out.returncode != 0 and message in out.stderr and "cli.md" in out.stderr
