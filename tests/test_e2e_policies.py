"""Policies end to end: an upstream project with versions uploaded 30 days, 3 days and an hour
ago, through distributions whose remotes hold back what is younger than 7 days (enforced,
audited, exempted) or newer than a freeze. Real pip and uv, with no client flag."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from support.api import Api, legacy_upload, with_auth
from support.packages import build_sdist, build_wheel
from support.servers import Server
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
TIMEOUT = 60
NOW = datetime.now(UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def remote(name: str, upstream: Upstream, **settings: object) -> str:
    lines = [f'name = "{name}"', f'url = "{upstream.index_url}"', "max_retries = 0"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "[[remotes]]\n" + "\n".join(lines) + "\n"


def distribution(name: str, remote_name: str) -> str:
    return f'[[distributions]]\nname = "{name}"\nbase_path = "{name}"\nremote = "{remote_name}"\n'


@pytest.fixture
def server(upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path) -> Server:
    for version, uploaded in (("1.0", ago(days=30)), ("2.0", ago(days=3)), ("3.0", ago(hours=1))):
        wheel = build_wheel(tmp_path / "wheels", "cool-lib", version)
        upstream.add_file("cool-lib", wheel, upload_time=uploaded)
    freeze = (NOW - timedelta(days=2)).isoformat()
    config = (
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        + remote("week", upstream, min_age="7d")
        + remote("audit", upstream, min_age="7d", policy_mode="audit")
        + remote("exempt", upstream, min_age="P7D", policy_exempt=["cool-*"])
        + remote("frozen", upstream, exclude_newer=freeze)
        + "".join(distribution(n, n) for n in ("week", "audit", "exempt", "frozen"))
    )
    return live_server(config)


def installed(server: Server, base_path: str, venv: Path, *, uv: bool = False) -> str:
    python = make_venv(venv)
    index = f"{server.url}/pypi/{base_path}/simple/"
    if uv:
        cmd = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python)]
        cmd += ["--index-url", index, "--cache-dir", str(venv / "uvcache"), "cool-lib"]
        subprocess.run(cmd, env=clean_env(), check=True, timeout=TIMEOUT, capture_output=True)
    else:
        run_pip(["install", "--index-url", index, "cool-lib"], python=python, timeout=TIMEOUT)
    code = "import cool_lib; print(cool_lib.__version__)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_cooldown_is_enforced_for_every_client(server: Server, tmp_path: Path) -> None:
    assert installed(server, "week", tmp_path / "pip") == "1.0"
    assert installed(server, "week", tmp_path / "uv", uv=True) == "1.0"

    # uv lock, no client flag: the lock file pins the old version too
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0"\nrequires-python = ">=3.8"\n'
        'dependencies = ["cool-lib"]\n'
    )
    lock = [sys.executable, "-m", "uv", "lock", "--directory", str(project)]
    lock += ["--default-index", f"{server.url}/pypi/week/simple/"]
    lock += ["--cache-dir", str(tmp_path / "uvcache")]
    subprocess.run(lock, env=clean_env(), check=True, timeout=TIMEOUT, capture_output=True)
    assert 'name = "cool-lib"\nversion = "1.0"' in (project / "uv.lock").read_text()

    # both formats and the JSON API agree; the newest file is refused, with the reason
    assert server.page_files("week", "cool-lib") == {"cool_lib-1.0-py3-none-any.whl"}
    html = requests.get(f"{server.url}/pypi/week/simple/cool-lib/", timeout=TIMEOUT).text
    assert "cool_lib-1.0" in html and "cool_lib-2.0" not in html and "cool_lib-3.0" not in html
    api = requests.get(f"{server.url}/pypi/week/pypi/cool-lib/json", timeout=TIMEOUT).json()
    assert set(api["releases"]) == {"1.0"} and api["info"]["version"] == "1.0"
    for held in ("cool_lib-3.0-py3-none-any.whl", "cool_lib-3.0-py3-none-any.whl.metadata"):
        refused = requests.get(f"{server.url}/pulp/content/week/{held}", timeout=TIMEOUT)
        assert refused.status_code == 403, refused.text
        assert "held by the remote's policy" in refused.text
        assert "minimum age of 7 days" in refused.text and "becomes available at" in refused.text
        wait = int(refused.headers["Retry-After"])
        assert 6 * 86400 < wait <= 7 * 86400
    status = requests.get(f"{server.url}/pulp/api/v3/status/", timeout=TIMEOUT).json()
    assert status["refused"]["week"]["held"] == 2


def test_audit_mode_and_exemptions_let_the_newest_through(server: Server, tmp_path: Path) -> None:
    assert installed(server, "audit", tmp_path / "audit") == "3.0"
    assert installed(server, "exempt", tmp_path / "exempt") == "3.0"


def test_a_freeze_gives_exactly_the_upstream_as_of_then(server: Server) -> None:
    assert server.page_files("frozen", "cool-lib") == {
        "cool_lib-1.0-py3-none-any.whl",
        "cool_lib-2.0-py3-none-any.whl",
    }


def test_a_cached_file_is_refused_while_held(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A file cached through a distribution without the policy is still refused through one
    with it: the page decides, not the store."""
    wheel = build_wheel(tmp_path / "wheels", "new-lib", "1.0")
    upstream.add_file("new-lib", wheel, upload_time=ago(hours=1))
    server = live_server(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        + remote("open", upstream)
        + remote("week", upstream, min_age="7d")
        + distribution("open", "open")
        + distribution("week", "week")
    )
    url = f"{server.url}/pulp/content/{{}}/{wheel.name}"
    assert requests.get(url.format("open"), timeout=TIMEOUT).content == wheel.read_bytes()
    assert requests.get(url.format("week"), timeout=TIMEOUT).status_code == 403


def test_the_json_api_of_a_project_whose_every_file_is_held_is_not_found(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """pypi.org answers 404 for a project without a release; a document whose `info.version`
    is null breaks clients that read it as a string (update bots, auditors)."""
    upstream.add_file(
        "new-lib", build_wheel(tmp_path / "w", "new-lib", "1.0"), upload_time=ago(hours=1)
    )
    server = live_server(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        + remote("week", upstream, min_age="7d")
        + distribution("week", "week")
    )
    answer = requests.get(f"{server.url}/pypi/week/pypi/new-lib/json", timeout=TIMEOUT)
    assert answer.status_code == 404, answer.text
    assert "no release" in answer.text and "1 file held" in answer.text
    assert server.json_page("week", "new-lib")["files"] == []  # the simple page: listed, empty


def test_a_page_shows_a_held_file_once_it_matures(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """The page is cached for ten minutes, but not past the moment its held file matures, here
    or by its clients."""
    wheel = build_wheel(tmp_path / "wheels", "ripe-lib", "1.0")
    uploaded = datetime.now(UTC)
    upstream.add_file("ripe-lib", wheel, upload_time=uploaded.isoformat().replace("+00:00", "Z"))
    server = live_server(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n[cache]\nindex_ttl = "10m"\n'
        + remote("soon", upstream, min_age="3s")
        + distribution("soon", "soon")
    )
    first = requests.get(
        f"{server.url}/pypi/soon/simple/ripe-lib/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=TIMEOUT,
    )
    assert first.json()["files"] == []
    # Clients may keep the page until then too, not for index_ttl (the memo's answer as well).
    memo = requests.get(first.url, headers={"Accept": first.request.headers["Accept"]}, timeout=9)
    for answer in (first, memo):
        max_age, _, public = answer.headers["Cache-Control"].partition(", ")
        assert int(max_age.removeprefix("max-age=")) <= 3 and public == "public", answer.headers
    time.sleep(max(0.0, (uploaded + timedelta(seconds=3.2) - datetime.now(UTC)).total_seconds()))
    assert server.page_files("soon", "ripe-lib") == {wheel.name}
    again = requests.get(
        f"{server.url}/pypi/soon/simple/ripe-lib/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=TIMEOUT,
    )
    assert again.headers["ETag"] != first.headers["ETag"]
    pages = upstream.requests_for("/simple/ripe-lib/", server="index", method="GET")
    assert len(pages) == 1  # from the page cache: only the screening was redone


def test_a_blocklist_hides_and_refuses_whatever_the_source(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    for version in ("1.0", "2.0", "3.0"):
        upstream.add_file(
            "cool-lib", build_wheel(wheels, "cool-lib", version), upload_time=ago(days=30)
        )
    server = live_server(
        with_auth(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            + remote("up", upstream)
            + distribution("corp", "up")
        )
    )
    api = Api(server.url)
    repo = api.repository("corp")
    dist = api.one("distributions/python/pypi/", name="corp")
    api.run(
        "PATCH", dist["pulp_href"], json={"repository": repo["pulp_href"], "merge_remote": True}
    )
    ours = build_wheel(tmp_path / "ours", "our-lib", "1.0")
    assert legacy_upload(server.url, "corp", ours).status_code == 200

    entries = ["cool-lib==3.0", "cool_lib-1.0-py3-none-any.whl", "our-*"]
    refused = api.request("PATCH", dist["pulp_href"], json={"blocklist": ["cool-lib=="]})
    assert refused.status_code == 400 and "blocklist" in refused.json()
    api.run("PATCH", dist["pulp_href"], json={"blocklist": entries})

    assert server.page_files("corp", "cool-lib") == {"cool_lib-2.0-py3-none-any.whl"}
    page = server.json_page("corp", "our-lib")
    assert page["files"] == []  # the repository's own file is blocked too
    # The JSON API shows what the pages show, and nothing of a project blocked whole.
    json_api = f"{server.url}/pypi/corp/pypi/{{}}/json"
    doc = requests.get(json_api.format("cool-lib"), timeout=TIMEOUT).json()
    shown = {v: [f["filename"] for f in fs] for v, fs in doc["releases"].items()}
    assert shown == {"2.0": ["cool_lib-2.0-py3-none-any.whl"]}
    for project in ("cool-lib/1.0", "cool-lib/3.0", "our-lib"):
        assert requests.get(json_api.format(project), timeout=TIMEOUT).status_code == 404
    listed = requests.get(
        f"{server.url}/pypi/corp/simple/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=TIMEOUT,
    ).json()["projects"]
    names = {p["name"] for p in listed}
    assert "cool-lib" in names and "our-lib" not in names  # blocked whole: not even named
    for name, entry in (
        ("cool_lib-3.0-py3-none-any.whl", "cool-lib==3.0"),
        ("cool_lib-1.0-py3-none-any.whl", "cool_lib-1.0-py3-none-any.whl"),
        (ours.name, "our-*"),
    ):
        answer = requests.get(f"{server.url}/pulp/content/corp/{name}", timeout=TIMEOUT)
        assert answer.status_code == 403 and f"blocklist entry '{entry}'" in answer.text
    again = build_wheel(tmp_path / "again", "our-lib", "2.0")
    upload = legacy_upload(server.url, "corp", again)
    assert upload.status_code == 403 and "our-*" in upload.text
    status = requests.get(f"{server.url}/pulp/api/v3/status/", timeout=TIMEOUT).json()
    assert status["refused"]["corp"]["blocked"] == 4


def test_a_blocklisted_filename_is_blocked_however_it_is_spelt(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`COOL.LIB-1.0.0-py3-none-any.whl` names the file the upstream calls
    `cool_lib-1.0-py3-none-any.whl` (normalized project and version): pip is not offered it,
    a direct request is refused, and an upload of it too."""
    wheels = tmp_path / "wheels"
    for version in ("1.0", "2.0"):
        upstream.add_file(
            "cool-lib", build_wheel(wheels, "cool-lib", version), upload_time=ago(days=30)
        )
    entry = "Cool_Lib-1.0.0-py3-none-any.whl"
    server = live_server(
        with_auth(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            + remote("up", upstream)
            + distribution("corp", "up")
            + f"blocklist = [{entry!r}]\n"
        )
    )
    blocked = "cool_lib-1.0-py3-none-any.whl"
    assert server.page_files("corp", "cool-lib") == {"cool_lib-2.0-py3-none-any.whl"}
    answer = requests.get(f"{server.url}/pulp/content/corp/{blocked}", timeout=TIMEOUT)
    assert answer.status_code == 403 and f"blocklist entry '{entry}'" in answer.text
    fetch = ["download", "--no-deps", "--index-url", server.index("corp"), "-d", str(tmp_path)]
    pinned = run_pip([*fetch, "cool-lib==1.0"], timeout=TIMEOUT, check=False)
    assert pinned.returncode != 0 and not (tmp_path / blocked).exists()
    assert "No matching distribution found for cool-lib==1.0" in pinned.stderr

    api = Api(server.url)
    repo = api.repository("own")
    api.distribution("own", repository=repo["pulp_href"])
    own = api.one("distributions/python/pypi/", name="own")
    api.run("PATCH", own["pulp_href"], json={"blocklist": ["OUR.LIB-1.0.tar.gz"]})
    upload = legacy_upload(server.url, "own", build_sdist(tmp_path / "ours", "our-lib", "1.0"))
    assert upload.status_code == 403 and "OUR.LIB-1.0.tar.gz" in upload.text


def test_an_upstream_quarantine_leaves_no_file_served(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """PEP 792: a quarantined project offers no files; cached copies are refused from the moment
    the page is revalidated."""
    wheel = build_wheel(tmp_path / "wheels", "bad-lib", "1.0")
    upstream.add_file("bad-lib", wheel, upload_time=ago(days=30))
    server = live_server(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n[cache]\nindex_ttl = "1s"\n'
        + remote("up", upstream)
        + distribution("main", "up")
    )
    url = f"{server.url}/pulp/content/main/{wheel.name}"
    assert requests.get(url, timeout=TIMEOUT).content == wheel.read_bytes()  # cached now

    upstream.statuses["bad-lib"] = ("quarantined", "malware found")
    time.sleep(1.2)  # the page's TTL
    page = server.json_page("main", "bad-lib")
    assert page["files"] == []
    assert page["project-status"] == {"status": "quarantined", "reason": "malware found"}
    assert page["meta"]["api-version"] == "1.4"
    html = requests.get(f"{server.url}/pypi/main/simple/bad-lib/", timeout=TIMEOUT).text
    assert '<meta name="pypi:project-status" content="quarantined">' in html
    refused = requests.get(url, timeout=TIMEOUT)
    assert refused.status_code == 403 and "quarantined: malware found" in refused.text
    status = requests.get(f"{server.url}/pulp/api/v3/status/", timeout=TIMEOUT).json()
    assert status["refused"]["main"]["quarantined"] == 1


def test_local_projects_archived_then_quarantined(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = live_server(
        with_auth(f'[server]\ndata_dir = "{tmp_path / "data"}"\n' + remote("up", upstream))
    )
    api = Api(server.url)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    first = build_wheel(tmp_path / "w1", "acme-lib", "1.0")
    assert legacy_upload(server.url, "corp", first).status_code == 200
    statuses = "projects/python/statuses/"
    status = api.create(
        statuses, name="Acme_Lib", repository=repo["pulp_href"], status="archived", reason="done"
    )
    assert (status["name"], status["status"]) == ("acme-lib", "archived")
    twice = api.request(
        "POST",
        statuses,
        json={"name": "acme-lib", "repository": repo["pulp_href"], "status": "archived"},
    )
    assert twice.status_code == 400

    # archived: served, marked, and closed to uploads
    page = server.json_page("corp", "acme-lib")
    assert page["project-status"] == {"status": "archived", "reason": "done"}
    assert [f["filename"] for f in page["files"]] == [first.name]
    refused = legacy_upload(server.url, "corp", build_wheel(tmp_path / "w2", "acme-lib", "2.0"))
    assert refused.status_code == 403 and "archived" in refused.text

    # quarantined: nothing offered, the stored file refused
    api.call("PATCH", status["pulp_href"], json={"status": "quarantined", "reason": "malware"})
    assert server.page_files("corp", "acme-lib") == set()
    answer = requests.get(f"{server.url}/pulp/content/corp/{first.name}", timeout=TIMEOUT)
    assert answer.status_code == 403 and "quarantined: malware" in answer.text

    assert api.request("DELETE", status["pulp_href"]).status_code == 204
    assert server.page_files("corp", "acme-lib") == {first.name}


def pip_installs(server: Server, base_path: str, requirement: str, venv: Path) -> str:
    """The version pip installs from the distribution (no client flag)."""
    python = make_venv(venv)
    index = f"{server.url}/pypi/{base_path}/simple/"
    run_pip(["install", "--index-url", index, requirement], python=python, timeout=TIMEOUT)
    module = requirement.split("=")[0].replace("-", "_")
    code = f"import {module}; print({module}.__version__)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_local_yanks_are_skipped_by_pip_unless_pinned(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    for version in ("1.0", "2.0"):
        upstream.add_file("cool-lib", build_wheel(tmp_path / "up", "cool-lib", version))
    server = live_server(
        with_auth(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            + remote("up", upstream)
            + distribution("main", "up")
        )
    )
    api = Api(server.url)
    repo = api.repository("corp")
    corp = api.distribution("corp", repository=repo["pulp_href"])
    main = api.one("distributions/python/pypi/", name="main")["pulp_href"]
    for version in ("1.0", "2.0"):
        wheel = build_wheel(tmp_path / "corp", "acme-lib", version)
        assert legacy_upload(server.url, "corp", wheel).status_code == 200
    yanks = "projects/python/yanks/"

    # a release of a repository: listed as yanked with the reason, skipped unless pinned
    yank = api.create(
        yanks, name="Acme.Lib", repository=repo["pulp_href"], version="2.0", reason="broken"
    )
    assert (yank["name"], yank["version"], yank["distribution"]) == ("acme-lib", "2.0", None)
    page = server.json_page("corp", "acme-lib")
    assert {f["filename"]: f["yanked"] for f in page["files"]} == {
        "acme_lib-1.0-py3-none-any.whl": False,
        "acme_lib-2.0-py3-none-any.whl": "broken",
    }
    assert pip_installs(server, "corp", "acme-lib", tmp_path / "v1") == "1.0"
    assert pip_installs(server, "corp", "acme-lib==2.0", tmp_path / "v2") == "2.0"

    # an upstream release, on one distribution only
    cool = "cool_lib-2.0-py3-none-any.whl"
    api.create(
        yanks,
        name="cool-lib",
        distribution=main,
        filename=cool,
    )
    assert pip_installs(server, "main", "cool-lib", tmp_path / "v3") == "1.0"
    info = requests.get(f"{server.url}/pypi/main/pypi/cool-lib/2.0/json", timeout=TIMEOUT).json()
    assert info["urls"][0]["yanked"] is True and info["info"]["yanked"] is True

    # un-yanked: the newest again
    assert api.request("DELETE", yank["pulp_href"]).status_code == 204
    assert pip_installs(server, "corp", "acme-lib", tmp_path / "v4") == "2.0"
    assert api.get(yanks, distribution=corp["pulp_href"])["count"] == 0
    assert api.get(yanks)["count"] == 1

    # what a yank must say, once
    in_corp = {"name": "acme-lib", "repository": repo["pulp_href"]}
    for body, field in (
        ({"name": "acme-lib", "version": "1.0"}, "repository"),
        ({**in_corp, "distribution": corp["pulp_href"], "version": "1.0"}, "repository"),
        (in_corp, "version"),
        ({**in_corp, "version": "one"}, "version"),
        ({**in_corp, "filename": "other-1.0.tar.gz"}, "filename"),
        ({"name": "cool-lib", "distribution": main, "filename": cool}, "name"),  # twice
    ):
        answer = api.request("POST", yanks, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert field in answer.json(), (body, answer.text)
