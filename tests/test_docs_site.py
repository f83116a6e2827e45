"""The documentation site builds with ``mkdocs build --strict``, links nowhere outside the
repository, and its generated pages (API reference, HTTP API, error codes) are true to
the code; the README is the quick start and points into it."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import actors
import storycore_tasks
from storycore_tasks import TaskManager
from storycore_tasks.errors import REMEDIATION_BY_CODE, ErrorCodes, http_status_for
from storycore_tasks.service.app import create_app
from storycore_tasks.service.auth import TokenStore
from storycore_tasks.service.deps import ServiceConfig

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 120.0  # seconds; the build takes a few on this machine
LINK_ATTRIBUTES = frozenset({"href", "src", "srcset", "action", "formaction", "poster", "data"})
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module into a temporary folder (never the repo)."""
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site_dir


class _Links(HTMLParser):
    """Every URL an HTML page links to or loads, from its elements' attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in LINK_ATTRIBUTES and value:
                if name == "srcset":
                    self.urls += [part.split()[0] for part in value.split(",") if part.strip()]
                else:
                    self.urls.append(value)
        style = dict(attrs).get("style") or ""
        self.urls += CSS_URL.findall(style)


def _leaves_the_site(url: str) -> bool:
    """True for a URL that would fetch or open something outside the built site: any
    scheme but ``data:`` (``https:``, ``http:``, ``mailto:``, ...) or a ``//host`` one."""
    url = url.strip()
    parts = urlsplit(url)
    return bool(parts.netloc) or (bool(parts.scheme) and parts.scheme != "data")


def test_the_site_builds_strict(site: Path) -> None:
    """``mkdocs build --strict`` succeeds (a broken link or anchor, a page missing from
    the nav, a docstring griffe cannot read: each is a warning, so a failure) and writes
    every page of the nav."""
    for page in [
        "index.html",
        "getting-started.html",
        "concepts/lifecycle.html",
        "concepts/stops.html",
        "concepts/isolation.html",
        "concepts/store.html",
        "concepts/policies.html",
        "how-to/storycore.html",
        "how-to/http-service.html",
        "how-to/testing.html",
        "reference/storycore-tasks.html",
        "reference/actors.html",
        "reference/client.html",
        "reference/testing.html",
        "reference/http-api.html",
        "reference/errors.html",
        "reference/openapi.json",
        "ARCHITECTURE.html",
        "benchmarks.html",
    ]:
        assert (site / page).is_file(), page


def test_no_page_links_outside_the_repository(site: Path) -> None:
    """No page links to or loads anything from elsewhere (fonts, scripts, images, the
    theme's own site): every href/src of every page and every url() of every style
    sheet stays inside the site, and every local link points at a file that exists."""
    outside: list[str] = []
    missing: list[str] = []
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 19
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for url in parser.urls:
            if _leaves_the_site(url):
                outside.append(f"{page.relative_to(site)}: {url}")
                continue
            path = unquote(urlsplit(url).path)
            # 404.html links from the site's root (it is served for any missing path).
            base = site if path.startswith("/") else page.parent
            if path and not (base / path.lstrip("/")).resolve().exists():
                missing.append(f"{page.relative_to(site)}: {url}")
    for sheet in sorted(site.rglob("*.css")):
        for url in CSS_URL.findall(sheet.read_text(encoding="utf-8")):
            if _leaves_the_site(url):
                outside.append(f"{sheet.relative_to(site)}: {url}")
    assert outside == []
    assert missing == []


def test_the_sources_link_nowhere_outside_the_repository() -> None:
    """README.md and the Markdown pages link only to files of the repository (a README
    read on its own has no site around it), and each such file exists."""
    outside: list[str] = []
    missing: list[str] = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code is not a link
        for match in MARKDOWN_LINK.finditer(prose):
            target = match.group(1) or match.group(2)
            if _leaves_the_site(target):
                outside.append(f"{page.relative_to(ROOT)}: {target}")
            elif not target.startswith("#"):
                path = (page.parent / unquote(target.split("#")[0])).resolve()
                if not path.exists():
                    missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert outside == []
    assert missing == []


def test_the_error_codes_page_is_generated_from_errors_py(site: Path) -> None:
    """Every error code is on the error codes page with the HTTP status and the remedy
    that storycore_tasks/errors.py gives it, and the hand-written table of each code's
    details leaves none out."""
    page = (site / "reference" / "errors.html").read_text(encoding="utf-8")
    generated_table = page.split("</table>")[0]  # the first table: the generated one
    rows = re.findall(r"<tr>(.*?)</tr>", generated_table, re.DOTALL)
    cells_of = {
        re.sub(r"<[^>]+>", "", cells[0]).strip(): cells
        for row in rows
        if (cells := re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL))
    }
    source = (ROOT / "docs" / "reference" / "errors.md").read_text(encoding="utf-8")
    for code in ErrorCodes:
        row = cells_of.get(code.value)
        assert row is not None, code
        assert row[1].strip() == str(http_status_for(code))
        remedy: object = REMEDIATION_BY_CODE[code]
        # One remedy, or one per surface (Python, CLI, HTTP): each is shown.
        texts = list(remedy.values()) if isinstance(remedy, Mapping) else [remedy]
        shown = " ".join(html.unescape(re.sub(r"<[^>]+>", "", row[2])).split())
        for text in texts:
            assert " ".join(str(text).split()) in shown, code
        assert re.search(rf"^\| `{code.value}` \| [^|]", source, re.MULTILINE), code


def test_the_http_api_page_is_the_services_openapi_document(site: Path) -> None:
    """The published openapi.json is the document create_app serves, and the HTTP API
    page shows every route of it."""
    manager = TaskManager(num_workers=1)
    try:
        app = create_app(manager, ServiceConfig(tokens=TokenStore()))
        try:
            expected = app.openapi()
        finally:
            app.state.service.close()
    finally:
        manager.shutdown(wait=True, timeout=30)
    published = json.loads((site / "reference" / "openapi.json").read_text(encoding="utf-8"))
    assert published == json.loads(json.dumps(expected))
    page = (site / "reference" / "http-api.html").read_text(encoding="utf-8")
    assert expected["paths"]
    for path, item in expected["paths"].items():
        for method in item:
            assert re.search(rf"{method.upper()} <code>{re.escape(path)}</code>", page), (
                method,
                path,
            )
    for schema in expected.get("components", {}).get("schemas", {}):
        assert f'id="schema-{schema}"' in page, schema
    assert "https://" not in re.sub(r"<pre.*?</pre>", "", page, flags=re.DOTALL)


def _documented_ids(*pages: Path) -> set[str]:
    return {found for page in pages for found in re.findall(r'id="([\w.]+)"', page.read_text())}


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    """Every name exported by storycore_tasks and actors (their __all__) has an entry
    in the API reference, and the Python client's ServiceClient and its methods too."""
    reference = site / "reference"
    ids = _documented_ids(reference / "storycore-tasks.html", reference / "actors.html")
    last_parts = {found.rsplit(".", 1)[-1] for found in ids}
    public = [name for name in storycore_tasks.__all__ if not name.startswith("__")]
    assert [name for name in public if name not in last_parts] == []
    assert [name for name in actors.__all__ if f"actors.{name}" not in ids] == []
    client = _documented_ids(reference / "client.html")
    for name in ["ServiceClient", "ServiceClientError", "ServiceClient.create_task"]:
        assert f"storycore_tasks.client.{name}" in client, name
    for method in ["status", "cancel", "list", "stats", "events"]:
        assert f"storycore_tasks.client.ServiceClient.{method}" in client, method


def test_the_benchmarks_page_includes_benchmarks_md(site: Path) -> None:
    """The benchmarks page is BENCHMARKS.md itself (included, not copied)."""
    page = (site / "benchmarks.html").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", (ROOT / "BENCHMARKS.md").read_text(), re.MULTILINE)
    assert headings
    for heading in headings:
        assert heading.split("`")[0].strip() in page, heading


def test_the_readmes_test_command_is_what_ci_runs() -> None:
    """The README's quick start shows the two commands: the demo, and the whole suite
    exactly as .ci/run runs it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = 'pip install ".[test]" && python -m pytest'
    assert f"```bash\n{test_command}\n```" in readme
    assert "```bash\npip install . && storycore-tasks demo\n```" in readme
    assert test_command in ci.splitlines()


def test_the_license_matches_the_metadata() -> None:
    """LICENSE is the MIT license that pyproject.toml declares in SPDX form, with a
    build requirement that understands that form (setuptools 77)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "setuptools>=77" in project["build-system"]["requires"]
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in license_text
    extras = project["project"]["optional-dependencies"]
    assert "storycore-tasks[docs]" in extras["test"]
    assert any(requirement.startswith("mkdocs~=") for requirement in extras["docs"])
