"""The policy decisions, as pure functions of (file, policy, now): cooldowns, freezes,
exemptions, audit mode, unknown upload times, and what a screened page keeps."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from packaging.utils import canonicalize_name

from pullthrough.config import RemoteSettings
from pullthrough.core import policy as policy_module
from pullthrough.core.filters import Rule, parse_rule
from pullthrough.core.models import DistFile, ProjectPage, project_versions
from pullthrough.core.policy import AUDIT, Blocklist, Policy, screen, without
from support.calls import counted, counted_parses

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat().replace("+00:00", "Z")


def wheel(version: str, uploaded: str | None) -> DistFile:
    return DistFile(f"lib-{version}-py3-none-any.whl", "u", upload_time=uploaded)


PAGE = ProjectPage(
    "lib",
    (
        wheel("1.0", ago(days=30)),
        DistFile("lib-1.0.tar.gz", "u", upload_time=ago(days=30)),
        wheel("2.0", ago(days=3)),
        wheel("3.0", ago(hours=1)),
        wheel("4.0", None),
        wheel("5.0", "not a time"),
    ),
    versions=("1.0", "2.0", "3.0", "4.0", "5.0", "6.0"),  # 6.0: listed without files
)
WEEK = Policy(min_age=timedelta(days=7))


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        (Policy(), {"1.0", "2.0", "3.0", "4.0", "5.0"}),
        (WEEK, {"1.0"}),
        (Policy(min_age=timedelta(days=2)), {"1.0", "2.0"}),
        (Policy(min_age=timedelta(days=7), hold_unknown=False), {"1.0", "4.0", "5.0"}),
        (Policy(exclude_newer=NOW - timedelta(days=10)), {"1.0"}),
        (Policy(exclude_newer=NOW - timedelta(hours=2)), {"1.0", "2.0"}),
        (
            Policy(min_age=timedelta(days=7), exempt=(parse_rule("lib"),)),
            {"1.0", "2.0", "3.0", "4.0", "5.0"},
        ),
        (Policy(min_age=timedelta(days=7), exempt=(parse_rule("lib==3.0"),)), {"1.0", "3.0"}),
        (
            Policy(min_age=timedelta(days=7), exempt=(parse_rule("li*"),)),
            {"1.0", "2.0", "3.0", "4.0", "5.0"},
        ),
        (Policy(min_age=timedelta(days=7), exempt=(parse_rule("other"),)), {"1.0"}),
        (Policy(min_age=timedelta(days=7), mode=AUDIT), {"1.0", "2.0", "3.0", "4.0", "5.0"}),
    ],
)
def test_what_a_page_keeps(policy: Policy, kept: set[str]) -> None:
    screened = screen(policy, PAGE, NOW)
    assert {f.filename.split("-")[1].removesuffix(".tar.gz") for f in screened.page.files} == kept


def test_held_files_say_why_and_until_when() -> None:
    screened = screen(WEEK, PAGE, NOW)
    two, three = (
        screened.held["lib-2.0-py3-none-any.whl"],
        screened.held["lib-3.0-py3-none-any.whl"],
    )
    assert two.until == NOW - timedelta(days=3) + timedelta(days=7)
    assert "minimum age of 7 days" in two.reason
    assert screened.matures_at == two.until  # the page expires when the first held file matures
    assert three.until is not None and three.until > two.until
    unknown = screened.held["lib-4.0-py3-none-any.whl"]
    assert unknown.until is None and "unknown" in unknown.reason
    message = two.message("lib-2.0-py3-none-any.whl")
    assert "held by the remote's policy" in message and "2026-12-06T12:00:00Z" in message


def test_a_version_whose_files_are_all_held_leaves_versions() -> None:
    screened = screen(WEEK, PAGE, NOW)
    assert screened.page.versions == ("1.0", "6.0")  # 6.0 had no files to hold
    audit = screen(Policy(min_age=timedelta(days=7), mode=AUDIT), PAGE, NOW)
    assert audit.page == PAGE and len(audit.held) == 4  # served as is, reported


def test_a_freeze_holds_for_good() -> None:
    frozen = screen(Policy(exclude_newer=NOW - timedelta(days=10)), PAGE, NOW)
    assert all(h.until is None for h in frozen.held.values())
    assert frozen.matures_at is None


def test_only_the_upstream_upload_time_counts() -> None:
    """No upload time means held, however long ago this server first saw the file."""
    page = ProjectPage("lib", (wheel("1.0", None),))
    assert screen(WEEK, page, NOW + timedelta(days=365)).page.files == ()


@pytest.mark.parametrize(
    "written",
    [
        "2026-12-02T11:00:00z",
        "2026-12-02t11:00:00Z",
        "2026-12-02t11:00:00.5z",
        "2026-12-02 11:00:00z",
    ],
)
def test_an_rfc_3339_upload_time_in_lower_case_is_read(written: str) -> None:
    """RFC 3339 (5.6) lets the T and Z be lower case: such a time is the time it says, not an
    unknown one - held only until it matures, never for good, and not let through unheld when
    unknown times are."""
    page = ProjectPage("lib", (wheel("1.0", written),))
    for policy in (WEEK, Policy(min_age=timedelta(days=7), hold_unknown=False)):
        screened = screen(policy, page, NOW)
        hold = screened.held["lib-1.0-py3-none-any.whl"]
        assert "younger than the minimum age" in hold.reason, hold
        assert hold.until is not None and hold.until.astimezone(UTC).date().isoformat() == (
            "2026-12-09"
        )
    assert screen(WEEK, page, NOW + timedelta(days=7)).page.files == page.files
    frozen = screen(Policy(exclude_newer=NOW - timedelta(days=1)), page, NOW)
    assert "after the freeze" in frozen.held["lib-1.0-py3-none-any.whl"].reason


@pytest.mark.parametrize(
    ("settings", "min_age", "freeze"),
    [
        ({"min_age": "7d"}, timedelta(days=7), None),
        ({"min_age": "P7D"}, timedelta(days=7), None),
        ({"min_age": "PT12H"}, timedelta(hours=12), None),
        ({"exclude_newer": "2026-01-31T00:00:00Z"}, None, datetime(2026, 1, 31, tzinfo=UTC)),
        ({"exclude_newer": "2026-01-31T01:00:00+01:00"}, None, datetime(2026, 1, 31, tzinfo=UTC)),
        ({"exclude_newer": "2026-01-31t00:00:00z"}, None, datetime(2026, 1, 31, tzinfo=UTC)),
    ],
)
def test_remote_settings_make_the_policy(
    settings: dict[str, str], min_age: timedelta | None, freeze: datetime | None
) -> None:
    from pullthrough.config import REMOTE_FIELDS

    declared = {f.name: f for f in REMOTE_FIELDS}
    values = {key: declared[key].parse(value) for key, value in settings.items()}
    holds = RemoteSettings(name="up", url="https://pypi.org/", **values).holds
    assert (holds.min_age, holds.exclude_newer) == (min_age, freeze)


@pytest.mark.parametrize(("key", "value"), [("min_age", "soon"), ("exclude_newer", "tomorrow")])
def test_bad_policy_settings_are_refused(key: str, value: str) -> None:
    from pullthrough.config import REMOTE_FIELDS

    declared = {f.name: f for f in REMOTE_FIELDS}
    with pytest.raises(ValueError):
        declared[key].parse(value)


def test_a_page_s_filenames_are_parsed_once_for_policy_blocklist_and_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The screening, the blocklist and the PEP 700 versions each read every filename of the
    page. packaging parses each once: ~20 us per wheel name, and a boto3-sized page of 2,800
    names took 280 ms of CPU when each step parsed them again."""
    parsed, _ = counted_parses(monkeypatch)
    page = ProjectPage(
        "once",
        tuple(
            DistFile(f"once-1.{i}-py3-none-any.whl", "u", upload_time=ago(days=i))
            for i in range(20)
        ),
    )
    screened = screen(WEEK, page, NOW)  # holds 1.0 to 1.6
    blocked = Blocklist.parse(["once==1.9"]).refused(screened.page)
    versions = project_versions(without(screened.page, blocked))
    assert versions == [f"1.{i}" for i in range(7, 20) if i != 9]
    assert len(parsed) == 20 and set(parsed.values()) == {1}


def test_a_blocklist_reads_a_page_s_name_once_and_each_version_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A blocklist of 1,000 known-bad names took 418 ms on a 2,800-file page when every rule
    was matched against every file; the page's name is one, and its versions are few."""
    names = counted(monkeypatch, Rule, "matches_name", lambda rule, _: rule.text)
    versions = counted(monkeypatch, Rule, "matches_version", lambda rule, v: f"{rule.text} {v}")
    blocklist = Blocklist.parse([*(f"evil-{i}" for i in range(50)), "lib<2", "lib==3.0"])
    tags = ("py3-none-any", "cp312-cp312-win_amd64", "cp313-cp313-win_amd64")
    page = ProjectPage(
        "lib", tuple(DistFile(f"lib-{v}-{t}.whl", "u") for v in ("1.0", "2.0", "3.0") for t in tags)
    )
    refused = blocklist.refused(page)
    assert {f: h.reason for f, h in refused.items()} == {
        **{f"lib-1.0-{t}.whl": "blocked by the blocklist entry 'lib<2'" for t in tags},
        **{f"lib-3.0-{t}.whl": "blocked by the blocklist entry 'lib==3.0'" for t in tags},
    }
    assert set(names.values()) == {1} and len(names) == 52
    assert versions == Counter(
        ["lib<2 1.0", "lib<2 2.0", "lib==3.0 2.0", "lib<2 3.0", "lib==3.0 3.0"]
    )


@pytest.mark.parametrize(
    ("entry", "filename", "blocked"),
    [
        (
            "pyyaml-6.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            "PyYAML-6.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            True,
        ),
        (
            "PyYAML-6.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            "pyyaml-6.0.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            True,
        ),
        (
            "pyyaml-6.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            "pyyaml-6.0-cp313-cp313-manylinux_2_17_x86_64.whl",
            False,
        ),
        ("PyYAML-6.0.tar.gz", "pyyaml-6.0.tar.gz", True),
        ("PyYAML-6.0.tar.gz", "pyyaml-6.0.zip", False),
        ("PyYAML-6.0.tar.bz2", "PyYAML-6.0.tar.bz2", True),  # a legacy name: itself only
        ("PyYAML-6.0.tar.bz2", "pyyaml-6.0.tar.bz2", False),
    ],
)
def test_a_filename_entry_blocks_its_file_however_it_is_spelt(
    entry: str, filename: str, blocked: bool
) -> None:
    blocklist = Blocklist.parse([entry])
    page = ProjectPage("PyYAML", (DistFile(filename, "u"), DistFile("pyyaml-7.0.tar.gz", "u")))
    expected = {filename: f"blocked by the blocklist entry {entry!r}"} if blocked else {}
    assert {f: h.reason for f, h in blocklist.refused(page).items()} == expected
    found = blocklist.hold_for(canonicalize_name("pyyaml"), None, filename)
    assert (found is not None) is blocked


def test_a_filename_entry_reads_only_the_names_of_its_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A filename entry naming one file of a project: of the project's pages only the names of
    that release's files are read (packaging's parse, ~5 us a name: 20 ms of every cold
    4,000-file page of that project when each was)."""
    read = counted(monkeypatch, policy_module, "file_identity", str)
    blocklist = Blocklist.parse(["LIB-1.5.0-py3-none-any.whl"])
    tags = ("py3-none-any", "cp312-cp312-win_amd64")
    page = ProjectPage(
        "lib", tuple(DistFile(f"lib-1.{i}-{t}.whl", "u") for i in range(50) for t in tags)
    )
    assert set(blocklist.refused(page)) == {"lib-1.5-py3-none-any.whl"}
    assert set(read) == {f"lib-1.5-{t}.whl" for t in tags} | {"LIB-1.5.0-py3-none-any.whl"}


def test_exemptions_are_matched_to_a_page_s_name_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long exemption list (a company's own projects) is matched against the page's name,
    not against every file of it: 100 names on a 2,800-file page cost 33 ms file by file."""
    names = counted(monkeypatch, Rule, "matches_name", lambda rule, _: rule.text)
    exempt = (*(parse_rule(f"internal-{i}") for i in range(20)), parse_rule("lib==3.0"))
    screened = screen(Policy(min_age=timedelta(days=7), exempt=exempt), PAGE, NOW)
    assert {f.filename for f in screened.page.files} == {
        "lib-1.0-py3-none-any.whl",
        "lib-1.0.tar.gz",
        "lib-3.0-py3-none-any.whl",  # younger than a week, but exempt
    }
    # the exemptions of other projects once each; lib==3.0 names this one: each file reads it
    assert names - Counter({"lib==3.0": names["lib==3.0"]}) == Counter(
        f"internal-{i}" for i in range(20)
    )
