"""MkDocs hooks: the site shows the guides (docs/) and the lab record (results/), and links keep working on both
GitHub and the site.

Pages are written for GitHub (relative paths between docs/, results/ and README.md). The site's pages are docs/*
at its root and results/* under results/; README.md is the home page and CHANGELOG.md a page. So each
relative link is resolved in the repository, then re-expressed between site pages; a link to a source file
(outside docs/ and results/) that exists becomes its plain text, since the site does not carry the code. A link
to a path that does not exist is left as it is, so that `mkdocs build --strict` fails on it.
"""

from __future__ import annotations

import os
import posixpath
import re

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# root files shown as pages: site path -> repository path
ROOT_PAGES = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def on_files(files, config):
    for site, repo in ROOT_PAGES.items():  # the README is the home page, the changelog a page
        if os.path.exists(os.path.join(ROOT, repo)):
            files.append(File.generated(config, site, abs_src_path=os.path.join(ROOT, repo)))
    results = os.path.join(ROOT, "results")
    for folder, _, names in os.walk(results):
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
            files.append(File(rel, ROOT, config["site_dir"], config["use_directory_urls"]))
    return files


def _repo_path(src_uri: str) -> str:
    if src_uri in ROOT_PAGES:
        return ROOT_PAGES[src_uri]
    return src_uri if src_uri.startswith("results/") else posixpath.join("docs", src_uri)


def _site_path(repo_path: str) -> str | None:
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/"):]
    if repo_path.startswith("results/"):
        return repo_path
    return {repo: site for site, repo in ROOT_PAGES.items()}.get(repo_path)


def _rewrite(line: str, page_repo: str, page_site: str) -> str:
    def fix(m):
        bang, text, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path, sep, anchor = target.partition("#")
        repo = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo), path))
        if not os.path.exists(os.path.join(ROOT, repo)):
            return m.group(0)  # broken: mkdocs reports it
        site = _site_path(repo)
        if site is None:
            return text if not bang else m.group(0)  # a source file: its name, as text
        rel = posixpath.relpath(site, posixpath.dirname(page_site) or ".")
        return f"{bang}[{text}]({rel}{sep}{anchor})"

    return LINK.sub(fix, line)


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    page_repo, out, fenced = _repo_path(src), [], False
    for line in markdown.split("\n"):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        out.append(line if fenced else _rewrite(line, page_repo, src))
    return "\n".join(out)
