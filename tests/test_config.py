from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from pullthrough.api.resources import REMOTES
from pullthrough.config import (
    ConfigError,
    RemoteSettings,
    load_settings,
    parse_duration,
    parse_size,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pullthrough.toml"
    path.write_text(text)
    return path


def test_embedded_default_is_pypi() -> None:
    s = load_settings(environ={})
    assert s.server.bind == "127.0.0.1:24817"
    assert [(d.base_path, d.remote) for d in s.distributions] == [("pypi", "pypi")]
    assert s.remote("pypi").url == "https://pypi.org/"


def test_full_file_and_environment_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
data_dir = "/srv/pt"
[cache]
max_size = "512MiB"
index_ttl = "90s"
[[remotes]]
name = "corp"
url = "https://pypi.org/simple/"
includes = ["django~=2.0,!=2.0.1", "acme-*"]
excludes = ["acme-secret"]
prereleases = false
package_types = ["bdist_wheel"]
exclude_platforms = ["windows"]
connect_timeout = "2s"
sock_read_timeout = 5
max_retries = 1
username = "bob"
password = "s3cret"
headers = {X-Team = "infra"}
[[distributions]]
name = "corp"
base_path = "team/corp"
remote = "corp"
""",
    )
    s = load_settings(path, environ={"PULLTHROUGH_CACHE__INDEX_TTL": "1m"})
    remote = s.remote("corp")
    assert (s.cache.max_size, s.cache.index_ttl) == (512 * 2**20, 60.0)
    assert remote.filters.allows_project(NormalizedName("acme-tools"))
    assert not remote.filters.allows_project(NormalizedName("acme-secret"))
    assert not remote.filters.prereleases
    assert (remote.connect_timeout, remote.sock_read_timeout, remote.max_retries) == (2, 5, 1)
    assert remote.headers == [{"X-Team": "infra"}]
    assert "s3cret" not in repr(s)
    assert s.distributions[0].base_path == "team/corp"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"connect_timeout": None, "sock_read_timeout": None, "max_retries": None}, (10, 60, 3)),
        ({}, (10, 60, 3)),
        ({"connect_timeout": 2.5, "sock_read_timeout": 7, "max_retries": 0}, (2.5, 7, 0)),
    ],
)
def test_a_remote_setting_stored_null_takes_its_default(
    values: dict[str, object], expected: tuple[float, float, int]
) -> None:
    """The API keeps a reset timeout as null (shown null, as Pulp shows it); the remote then
    connects, reads and retries with the defaults, never without a timeout."""
    remote = RemoteSettings.from_values("r", {"url": "http://127.0.0.1:9/", **values})
    assert (remote.connect_timeout, remote.sock_read_timeout, remote.max_retries) == expected


def test_remote_override_from_environment() -> None:
    s = load_settings(environ={"PULLTHROUGH_REMOTES__PYPI__URL": "http://127.0.0.1:9/simple/"})
    assert s.remote("pypi").url == "http://127.0.0.1:9/simple/"


def test_an_environment_variable_names_a_remote_whatever_its_separators(tmp_path: Path) -> None:
    """A variable's name has no `.` or `-`: its `_` stands for any of them."""
    text = (
        "[[remotes]]\nname = 'corp.mirror-1'\nurl = 'http://x/'\n"
        "[[remotes]]\nname = 'a-b'\nurl = 'http://x/'\n"
        "[[remotes]]\nname = 'a.b'\nurl = 'http://x/'\n"
    )
    env = {"PULLTHROUGH_REMOTES__CORP_MIRROR_1__URL": "http://127.0.0.1:9/simple/"}
    s = load_settings(write(tmp_path, text), environ=env)
    assert s.remote("corp.mirror-1").url == "http://127.0.0.1:9/simple/"
    with pytest.raises(ConfigError, match=r"names more than one remote \('a-b', 'a.b'\)"):
        load_settings(write(tmp_path, text), environ={"PULLTHROUGH_REMOTES__A_B__URL": "http://y/"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[cache]\nmax_size = 'lots'", "cache.max_size: expected a size"),
        ("[server]\nbind = 'nowhere'", "server.bind: expected HOST:PORT"),
        ("[server]\nprot = 1", "server.prot: unknown setting"),
        ("[[remotes]]\nname = 'a'\nurl = 'ftp://x'", "remotes[0].url: expected an http(s) URL"),
        ("[[remotes]]\nname = 'a'", "remotes[0].url: required"),
        (
            "[[remotes]]\nname = 'a'\nurl = 'http://x/'\nincludes = ['dj ango']",
            "invalid requirement",
        ),
        ("[[remotes]]\nname = 'a'\nurl = 'http://x/'\nexclude_platforms = ['beos']", "platforms"),
        ("[[distributions]]\nname = 'd'\nbase_path = 'd'\nremote = 'nope'", "no remote named"),
        ("[[distributions]]\nname = 'd'\nbase_path = '../etc'", "base_path"),
        (
            "[[distributions]]\nname = 'd'\nbase_path = 'd'\n"
            "[[distributions]]\nname = 'e'\nbase_path = 'd/simple'",
            "distributions[1].base_path: 'd/simple' overlaps the base path 'd' of distribution 'd'",
        ),
        ("[caches]\n", "caches: unknown section"),
        ("this is = not toml =", "invalid TOML"),
        ("[server]\ndatabase_url = 'not a url'", "server.database_url: expected a database URL"),
        ("[server]\ndatabase_url = 'mysql://u@h/db'", "got one of 'mysql'"),
        ("[storage]\ns3_endpoint_url = 'not a url'", "storage.s3_endpoint_url: expected an http"),
        (
            "[storage]\ns3_public_endpoint_url = 'seaweed.example.com:8333'",
            "storage.s3_public_endpoint_url: expected an http(s) URL",
        ),
        # a presigned URL's X-Amz-Expires: whole seconds, 1 s to 7 days (else S3 refuses it)
        ("[storage]\ns3_redirect = '500ms'", "storage.s3_redirect: expected 0 or from 1s to 7d"),
        ("[storage]\ns3_redirect = '8d'", "storage.s3_redirect: expected 0 or from 1s to 7d"),
    ],
)
def test_invalid_configuration_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, text), environ={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"cache\.index_ttl"):
        load_settings(environ={"PULLTHROUGH_CACHE__INDEX_TTL": "soon"})
    with pytest.raises(ConfigError, match="PULLTHROUGH_REMOTES__NOPE__URL"):
        load_settings(environ={"PULLTHROUGH_REMOTES__NOPE__URL": "http://x/"})


@pytest.mark.parametrize(
    ("text", "size"), [("20GB", 20 * 10**9), ("1GiB", 2**30), ("100", 100), (4096, 4096)]
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_sizes_past_two_gigabytes_are_settings_too() -> None:
    """Sizes are 64-bit: a 200 GB cache and 8 GiB uploads, not the 32-bit catalog limit."""
    settings = load_settings(
        environ={
            "PULLTHROUGH_CACHE__MAX_SIZE": "200GB",
            "PULLTHROUGH_SERVER__MAX_UPLOAD_SIZE": "8GiB",
        }
    )
    assert settings.cache.max_size == 200 * 10**9
    assert settings.server.max_upload_size == 8 * 2**30


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("500ms", 0.5), ("2h", 7200), (3, 3)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_config_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it: Is a directory"):
        load_settings(tmp_path, environ={})
    latin = tmp_path / "latin.toml"
    latin.write_bytes("[server]\nbind = '\xe9'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_settings(latin, environ={})


def test_database_urls_of_postgresql_mean_psycopg_3(tmp_path: Path) -> None:
    for given in (
        "postgresql://u:p%40ss@db.example/pt",
        "postgresql+psycopg://u:p%40ss@db.example/pt",
    ):
        settings = load_settings(write(tmp_path, f"[server]\ndatabase_url = '{given}'"), environ={})
        assert settings.server.database_url == "postgresql+psycopg://u:p%40ss@db.example/pt"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("url = 'htps://deploy:TOPSECRET@index.example/simple/'", "TOPSECRET"),
        ("url = 'htps://deploy:TOP/SECRET@index.example/simple/'", "SECRET"),
        ("url = 'htps://index.example/simple/?token=TOPSECRET'", "TOPSECRET"),
        ("url = 'http://x/'\nproxy_url = 'deploy:TOPSECRET@proxy.example:3128'", "TOPSECRET"),
        ("url = 'http://x/'\nclient_key = 'TOPSECRETbase64keywithoutheader'", "TOPSECRET"),
        ("url = 'http://x/'\nheaders = '\"TOPSECRET\"'", "TOPSECRET"),
    ],
)
def test_a_refused_value_that_may_hold_a_secret_is_not_repeated(
    tmp_path: Path, text: str, secret: str
) -> None:
    """Errors at start go to journald or docker logs: a mistyped URL's password, a key that is
    not PEM, header values are not shown."""
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, f"[[remotes]]\nname = 'a'\n{text}"), environ={})
    assert "remotes[0]." in str(raised.value) and secret not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "given", "kept"),
    [
        ("name", " pypi\t", "pypi"),
        ("url", " https://pypi.org/ ", "https://pypi.org/"),
        ("password", " secret ", " secret "),  # Pulp's passwords: trim_whitespace=False
        ("proxy_password", " secret ", " secret "),
        ("policy", " on_demand", None),  # a choice: taken as sent, and none of them
    ],
)
def test_remote_text_is_trimmed_as_drf_trims_it_but_secrets_and_choices(
    name: str, given: str, kept: str | None
) -> None:
    (declared,) = [f for f in REMOTES.fields if f.name == name]
    if kept is None:
        with pytest.raises(ValueError, match="not a valid choice"):
            declared.validate(given)
    else:
        assert declared.validate(given) == kept
