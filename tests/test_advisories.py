"""OSV advisories as pure decisions: what a record says (and what is not a record), which
versions it affects, which files it blocks or holds, and the JSON API's `vulnerabilities`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.specifiers import Specifier
from packaging.utils import canonicalize_name
from packaging.version import Version

import pullthrough.core.advisories as osv
from pullthrough.core.advisories import (
    Advisory,
    Affected,
    InvalidAdvisory,
    parse_bytes,
    parse_record,
    refusals,
    vulnerabilities,
)
from pullthrough.core.models import DistFile, ProjectPage, file_versions
from pullthrough.core.policy import BLOCKED, HELD, Blocklist, Hold
from support.calls import counted

DEMO = canonicalize_name("demo-lib")
MODIFIED = "2024-05-02T10:00:00Z"

# Small records shaped like those of the PyPI advisory database, GitHub and OpenSSF's
# malicious-packages (as osv.dev serves them).
PYSEC: dict[str, Any] = {
    "id": "PYSEC-2024-10",
    "modified": MODIFIED,
    "published": "2024-05-01T00:00:00Z",
    "aliases": ["CVE-2024-1111"],
    "details": "A crafted header makes the parser loop forever.",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Demo_Lib", "purl": "pkg:pypi/demo-lib"},
            "ranges": [
                {
                    "type": "GIT",
                    "repo": "https://github.com/demo/lib",
                    "events": [{"introduced": "0"}, {"fixed": "8f2c0d5e"}],
                },
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]},
            ],
            "versions": ["1.0", "1.0.1", "1.5"],
        }
    ],
    "references": [
        {"type": "WEB", "url": "https://github.com/demo/lib/issues/7"},
        {"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc"},
    ],
}
GHSA: dict[str, Any] = {
    "schema_version": "1.6.0",
    "id": "GHSA-aaaa-bbbb-cccc",
    "modified": MODIFIED,
    "aliases": ["CVE-2024-2222", "PYSEC-2024-11"],
    "summary": "Path traversal in demo-lib",
    "details": "Archive members may be written outside the target directory.",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N"}],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "demo-lib"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "1.2"}, {"fixed": "1.4.1"}]}
            ],
        },
        {
            "package": {"ecosystem": "npm", "name": "demo-lib"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
        },
    ],
    "references": [{"type": "WEB", "url": "https://github.com/demo/lib/security"}],
    "database_specific": {"severity": "HIGH", "github_reviewed": True},
}
MAL_RELEASE: dict[str, Any] = {  # a compromised release of a real project
    "id": "MAL-2024-100",
    "modified": MODIFIED,
    "summary": "Malicious code in demo-lib (PyPI)",
    "details": "Release 1.0.1 sends the environment to a remote host.",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "demo-lib"}, "versions": ["1.0.1"]}],
    "database_specific": {"malicious-packages-origins": [{"source": "ossf-package-analysis"}]},
}
MAL_PROJECT: dict[str, Any] = {  # a typosquat: every version
    "id": "MAL-2024-200",
    "modified": MODIFIED,
    "summary": "Malicious code in demo-lbi (PyPI)",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "demo-lbi"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
        }
    ],
}


def record(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def entry(*ranges: list[dict[str, str]], versions: list[str] | None = None) -> Affected:
    """One PyPI entry of ECOSYSTEM ranges (each a list of events), as a record gives it."""
    raw: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": "demo-lib"}}
    raw["ranges"] = [{"type": "ECOSYSTEM", "events": events} for events in ranges]
    if versions is not None:
        raw["versions"] = versions
    (parsed,) = parse_record({"id": "X-1", "modified": MODIFIED, "affected": [raw]}).affected
    return parsed


V = Version


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            PYSEC,
            Advisory(
                id="PYSEC-2024-10",
                modified=MODIFIED,
                withdrawn=None,
                summary="",
                details="A crafted header makes the parser loop forever.",
                aliases=("CVE-2024-1111",),
                link="https://github.com/advisories/GHSA-aaaa-bbbb-cccc",  # ADVISORY before WEB
                affected=(
                    Affected(
                        DEMO,
                        frozenset({V("1.0"), V("1.0.1"), V("1.5")}),
                        ((("introduced", None), ("fixed", V("2.0"))),),  # the GIT range left out
                    ),
                ),
            ),
        ),
        (
            GHSA,
            Advisory(
                id="GHSA-aaaa-bbbb-cccc",
                modified=MODIFIED,
                withdrawn=None,
                summary="Path traversal in demo-lib",
                details="Archive members may be written outside the target directory.",
                aliases=("CVE-2024-2222", "PYSEC-2024-11"),
                link="https://github.com/demo/lib/security",
                affected=(  # the npm entry left out
                    Affected(
                        DEMO, frozenset(), ((("introduced", V("1.2")), ("fixed", V("1.4.1"))),)
                    ),
                ),
            ),
        ),
        (
            {"id": "MAL-2024-300", "modified": MODIFIED},  # only what OSV requires
            Advisory(
                id="MAL-2024-300",
                modified=MODIFIED,
                withdrawn=None,
                summary="",
                details="",
                aliases=(),
                link="https://osv.dev/vulnerability/MAL-2024-300",
                affected=(),
            ),
        ),
        (
            {
                "id": "PYSEC-2024-12",
                "modified": MODIFIED,
                "withdrawn": "2024-06-01T00:00:00Z",
                "summary": None,
                "aliases": None,
                "references": [{"type": "REPORT", "url": "https://example.org/report"}],
                "affected": [
                    {"package": {"ecosystem": "Go", "name": "example.org/demo"}},
                    {"ranges": [{"type": "GIT", "repo": "https://x", "events": []}]},  # no package
                ],
            },
            Advisory(
                id="PYSEC-2024-12",
                modified=MODIFIED,
                withdrawn="2024-06-01T00:00:00Z",
                summary="",
                details="",
                aliases=(),
                link="https://osv.dev/vulnerability/PYSEC-2024-12",
                affected=(),
            ),
        ),
    ],
    ids=["pysec", "ghsa", "minimal", "withdrawn-not-pypi"],
)
def test_a_record_reads_as_an_advisory(data: dict[str, Any], expected: Advisory) -> None:
    assert parse_record(data) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (  # versions that are not PEP 440 left out; 1.0 and 1.0.0 are one version
            {"versions": ["1.0", "1.0.0", "not a version", "2.0-RC1"]},
            Affected(DEMO, frozenset({V("1.0"), V("2.0rc1")}), ()),
        ),
        (  # SEMVER and GIT ranges, and ranges left empty, say nothing of PyPI versions
            {
                "versions": ["1.0"],
                "ranges": [
                    {"type": "SEMVER", "events": [{"introduced": "0"}]},
                    {"type": "ECOSYSTEM", "events": [{"introduced": "dev"}]},
                ],
            },
            Affected(DEMO, frozenset({V("1.0")}), ()),
        ),
        (  # a limit "*" is infinity: no limit at all
            {
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "1"}, {"limit": "2"}, {"limit": "*"}],
                    }
                ]
            },
            Affected(DEMO, frozenset(), ((("introduced", V("1")),),)),
        ),
        (  # unknown event kinds are skipped (a later schema's)
            {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "note": "x"}]}]},
            Affected(DEMO, frozenset(), ((("introduced", None),),)),
        ),
        (  # nothing usable is left: not "no bounds at all" (every version)
            {"versions": ["latest"], "ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}]},
            None,
        ),
    ],
)
def test_what_an_entry_keeps(raw: dict[str, Any], expected: Affected | None) -> None:
    raw = {"package": {"ecosystem": "PyPI", "name": "demo-lib"}, **raw}
    parsed = parse_record({"id": "X-1", "modified": MODIFIED, "affected": [raw]})
    assert parsed.affected == (() if expected is None else (expected,))


def bad(affected: object) -> dict[str, Any]:
    return {"id": "X-1", "modified": MODIFIED, "affected": affected}


def pypi(**fields: object) -> list[dict[str, object]]:
    return [{"package": {"ecosystem": "PyPI", "name": "demo-lib"}, **fields}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([PYSEC], "not an object"),
        ("PYSEC-2024-10", "not an object"),
        (None, "not an object"),
        ({"modified": MODIFIED}, "no 'id'"),
        ({"id": "", "modified": MODIFIED}, "no 'id'"),
        ({"id": 10, "modified": MODIFIED}, "'id' must be a string"),
        ({"id": "X-1"}, "no 'modified'"),
        ({"id": "X-1", "modified": 1714644000}, "'modified' must be a string"),
        (record(PYSEC, summary=["a"]), "'summary' must be a string"),
        (record(PYSEC, withdrawn=True), "'withdrawn' must be a string"),
        (record(PYSEC, aliases="CVE-2024-1111"), "'aliases' must be a list"),
        (record(PYSEC, aliases=["CVE-2024-1111", 7]), "'aliases' must be a list of strings"),
        (record(PYSEC, references={"url": "x"}), "'references' must be a list"),
        (record(PYSEC, references=["https://x"]), "'references[0]' must be an object"),
        (record(PYSEC, references=[{"type": "WEB"}]), "'references[0]' has no 'url'"),
        (bad({"package": {}}), "'affected' must be a list"),
        (bad(["demo-lib"]), "'affected[0]' must be an object"),
        (bad([{"package": "demo-lib"}]), "'affected[0].package' must be an object"),
        (bad([{"package": {"ecosystem": "PyPI"}}]), "'affected[0].package' has no 'name'"),
        (bad([{"package": {"ecosystem": "npm"}}]), "'affected[0].package' has no 'name'"),
        (bad([{"package": {"name": 3}}]), "'affected[0].package.name' must be a string"),
        (
            bad([{"package": {"name": "x", "ecosystem": ["PyPI"]}}]),
            "'affected[0].package.ecosystem' must be a string",
        ),
        (bad(pypi(versions="1.0")), "'affected[0].versions' must be a list"),
        (bad(pypi(versions=[1.0])), "'affected[0].versions' must be a list of strings"),
        (bad(pypi(ranges={"type": "ECOSYSTEM"})), "'affected[0].ranges' must be a list"),
        (bad(pypi(ranges=[["introduced", "0"]])), "'affected[0].ranges[0]' must be an object"),
        (
            bad(pypi(ranges=[{"type": "ECOSYSTEM", "events": {"introduced": "0"}}])),
            "'affected[0].ranges[0].events' must be a list",
        ),
        (
            bad(pypi(ranges=[{"type": "ECOSYSTEM", "events": ["0"]}])),
            "'affected[0].ranges[0].events[0]' must be an object",
        ),
        (
            bad(
                pypi(ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": 2}]}])
            ),
            "'affected[0].ranges[0].events[1].fixed' must be a string",
        ),
    ],
)
def test_what_is_not_a_record(data: object, message: str) -> None:
    with pytest.raises(InvalidAdvisory) as caught:
        parse_record(data)
    assert str(caught.value) == message


FIXED_2 = [{"introduced": "0"}, {"fixed": "2.0"}]
FROM_1_2 = [{"introduced": "1.2"}, {"fixed": "1.4.1"}]
UP_TO_1_5 = [{"introduced": "1.0"}, {"last_affected": "1.5"}]
TWO_PAIRS = [{"introduced": "1.0"}, {"fixed": "1.0.2"}, {"introduced": "3.0"}, {"fixed": "3.2.5"}]
SHUFFLED = [{"fixed": "3.2.5"}, {"introduced": "3.0"}, {"fixed": "1.0.2"}, {"introduced": "1.0"}]


@pytest.mark.parametrize(
    ("affected", "version", "expected"),
    [
        (entry(FIXED_2), "0.0.dev0", True),  # introduced "0": before the very first version
        (entry(FIXED_2), "1.9.9", True),
        (entry(FIXED_2), "2.0rc1", True),  # a pre-release comes before its release
        (entry(FIXED_2), "2.0", False),
        (entry(FIXED_2), "2.0.0", False),
        (entry(FIXED_2), "2.0.post1", False),
        (entry(FROM_1_2), "1.1", False),
        (entry(FROM_1_2), "1.2rc1", False),
        (entry(FROM_1_2), "1.2", True),
        (entry(FROM_1_2), "1.4.1.dev3", True),
        (entry(FROM_1_2), "1.4.1", False),
        (entry(UP_TO_1_5), "0.9", False),
        (entry(UP_TO_1_5), "1.5", True),  # last_affected is affected
        (entry(UP_TO_1_5), "1.5.post1", False),
        (entry(UP_TO_1_5), "1.5.1", False),
        (entry(TWO_PAIRS), "0.5", False),
        (entry(TWO_PAIRS), "1.0.1", True),
        (entry(TWO_PAIRS), "2.0", False),
        (entry(TWO_PAIRS), "3.1", True),
        (entry(TWO_PAIRS), "3.2.5", False),
        (entry(SHUFFLED), "1.0.1", True),  # events are sorted before they are read
        (entry(SHUFFLED), "2.0", False),
        (entry(SHUFFLED), "3.1", True),
        (entry([{"fixed": "1.0"}, {"introduced": "1.0"}]), "1.0", False),  # an empty range
        (entry([{"introduced": "0"}]), "99.0", True),
        (entry([{"introduced": "0"}, {"limit": "2.0"}]), "1.9", True),
        (entry([{"introduced": "0"}, {"limit": "2.0"}]), "2.0", False),
        (entry([{"introduced": "0"}, {"fixed": "1.0"}], [{"introduced": "2.0"}]), "0.5", True),
        (entry([{"introduced": "0"}, {"fixed": "1.0"}], [{"introduced": "2.0"}]), "1.5", False),
        (entry([{"introduced": "0"}, {"fixed": "1.0"}], [{"introduced": "2.0"}]), "2.0", True),
        (entry(versions=["1.0.1", "2.0"]), "1.0.1", True),
        (entry(versions=["1.0.1", "2.0"]), "2.0.0", True),  # PEP 440 equality
        (entry(versions=["1.0.1", "2.0"]), "1.0.2", False),
        (entry(FROM_1_2, versions=["0.9"]), "0.9", True),  # listed, or in a range
        (entry(versions=["1.0", "not-a-version"]), "1.0", True),
        (entry([{"introduced": "1.0"}, {"fixed": "soon"}]), "5.0", True),  # no fix it can read
        (entry([{"introduced": "someday"}, {"fixed": "2.0"}]), "1.0", False),
        # A local build (PEP 440's `+label`) is where its release is.
        (entry(versions=["3.0"]), "3.0+cpu", True),
        (entry(versions=["3.0"]), "3.0.0+cu118.torch2", True),
        (entry(versions=["3.0"]), "3.0.post1+cpu", False),
        (entry(versions=["3.0"]), "3.0rc1+cpu", False),
        (entry(versions=["3.0+cpu"]), "3.0+cpu", True),
        (entry(versions=["3.0+cpu"]), "3.0+gpu", False),
        (entry(versions=["3.0+cpu"]), "3.0", False),
        (entry(versions=["v3.0", "4.00"]), "3.0.0", True),  # compared as versions, not text
        (entry(versions=["v3.0", "4.00"]), "4.0+cpu", True),
        (entry(FIXED_2), "1.9+cpu", True),
        (entry(FIXED_2), "2.0+cpu", False),
        (entry(FROM_1_2), "1.2+cpu", True),
        (entry(FROM_1_2), "1.4.1+cpu", False),
        (entry(UP_TO_1_5), "1.5+cpu", True),  # as `<=1.5` takes it in
        (entry(UP_TO_1_5), "1.5.post1+cpu", False),
        (entry([{"introduced": "0"}, {"limit": "2.0"}]), "2.0+cpu", False),
        (entry([{"introduced": "3.0+cpu"}]), "3.0+cpu", True),
        (entry([{"introduced": "3.0+cpu"}]), "3.0", False),
    ],
)
def test_which_versions_an_entry_affects(affected: Affected, version: str, expected: bool) -> None:
    assert affected.affects(Version(version)) is expected


@pytest.mark.parametrize("listed", ["3.0", "3.0.0", "v3.0", "3.00", "3.0+cpu", "3.0.0+CPU"])
@pytest.mark.parametrize(
    "version", ["3.0", "3.0.0", "3.0+cpu", "3.0+gpu", "3.0.0+cpu", "3.0.1", "3.0rc1", "3.0.post1"]
)
def test_a_listed_version_is_the_blocklist_s_equality(listed: str, version: str) -> None:
    """A MAL- record listing a version refuses what the blocklist entry `==` it refuses."""
    blocklist = Blocklist.parse([f"demo-lib=={listed}"])
    blocked = blocklist.hold_for(DEMO, Version(version), "x") is not None
    advisory = parse_record(record(MAL_RELEASE, affected=pypi(versions=[listed])))
    assert advisory.affects(DEMO, Version(version)) is blocked
    assert blocked is Specifier(f"=={listed}").contains(version, prereleases=True)


@pytest.mark.parametrize(
    ("data", "name", "version", "expected"),
    [
        (PYSEC, "Demo.Lib", "1.0", True),
        (PYSEC, "demo-lib", "2.0", False),
        (PYSEC, "other", "1.0", False),
        (PYSEC, "demo-lib", None, False),  # a vulnerability needs a version to affect
        (record(PYSEC, withdrawn="2024-06-01T00:00:00Z"), "demo-lib", "1.0", False),
        (
            record(
                PYSEC,
                affected=pypi(ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]),
            ),
            "demo-lib",
            None,
            False,
        ),
        (MAL_RELEASE, "demo-lib", "1.0.1", True),
        (MAL_RELEASE, "demo-lib", "1.0.2", False),
        (MAL_RELEASE, "demo-lib", None, False),  # bounded: an unknown version may be another
        (MAL_PROJECT, "demo-lbi", "5.0", True),
        (MAL_PROJECT, "demo-lbi", None, True),  # introduced "0" and nothing after: every file
        (MAL_PROJECT, "demo-lib", None, False),
        (record(MAL_PROJECT, withdrawn="2024-06-01T00:00:00Z"), "demo-lbi", None, False),
        (record(MAL_PROJECT, affected=pypi()), "demo-lib", None, True),  # no bounds at all
        (record(MAL_PROJECT, affected=pypi(versions=["latest"])), "demo-lib", None, False),
        (
            record(MAL_PROJECT, affected=pypi(ranges=[{"type": "ECOSYSTEM", "events": FIXED_2}])),
            "demo-lib",
            None,
            False,
        ),
    ],
)
def test_what_an_advisory_affects(
    data: dict[str, Any], name: str, version: str | None, expected: bool
) -> None:
    advisory = parse_record(data)
    assert (
        advisory.affects(canonicalize_name(name), None if version is None else Version(version))
        is expected
    )


def test_fixed_in_lists_the_fixes_of_one_package_in_version_order() -> None:
    def ranged(name: str, *events: dict[str, str]) -> dict[str, object]:
        package = {"ecosystem": "PyPI", "name": name}
        return {"package": package, "ranges": [{"type": "ECOSYSTEM", "events": list(events)}]}

    advisory = parse_record(
        record(
            GHSA,
            affected=[
                ranged("demo-lib", {"introduced": "1.9"}, {"fixed": "1.10"}),
                ranged("demo-lib", {"introduced": "0"}, {"fixed": "1.9"}, {"introduced": "2"}),
                ranged("other", {"introduced": "0"}, {"fixed": "3.0"}),
            ],
        )
    )
    assert advisory.fixed_in(DEMO) == ["1.9", "1.10"]
    assert advisory.affected[1].fixed_in == ["1.9"]
    assert advisory.fixed_in(canonicalize_name("other")) == ["3.0"]
    assert advisory.fixed_in(canonicalize_name("unrelated")) == []


def page(name: str, *filenames: str) -> ProjectPage:
    return ProjectPage(name, tuple(DistFile(f, f"https://files.example/{f}") for f in filenames))


DEMO_PAGE = page(
    "demo-lib",
    "demo_lib-1.0-py3-none-any.whl",
    "demo_lib-1.0.1.tar.gz",
    "demo_lib-2.0-py3-none-any.whl",
    "demo-lib-nightly.zip",  # a version nobody can read
)
WHEEL_1, SDIST_1_0_1, WHEEL_2, NIGHTLY = (f.filename for f in DEMO_PAGE.files)
HELD_PYSEC = (HELD, "held: version {} is affected by the advisory PYSEC-2024-10 (CVE-2024-1111)")
BLOCKED_RELEASE = (
    BLOCKED,
    "blocked by the malicious-package advisory MAL-2024-100: Malicious code in demo-lib (PyPI)",
)
WITHDRAWN = "2024-06-01T00:00:00Z"


@pytest.mark.parametrize(
    ("data", "block_malicious", "hold_advisories", "expected"),
    [
        ([MAL_RELEASE], True, False, {SDIST_1_0_1: BLOCKED_RELEASE}),
        ([MAL_RELEASE], False, True, {}),  # a MAL- record only ever blocks
        ([PYSEC], True, False, {}),
        (
            [PYSEC],
            False,
            True,
            {
                WHEEL_1: (HELD, HELD_PYSEC[1].format("1.0")),
                SDIST_1_0_1: (HELD, HELD_PYSEC[1].format("1.0.1")),
            },
        ),
        (  # the malicious advisory first, wherever it is listed
            [PYSEC, MAL_RELEASE],
            True,
            True,
            {WHEEL_1: (HELD, HELD_PYSEC[1].format("1.0")), SDIST_1_0_1: BLOCKED_RELEASE},
        ),
        (
            [GHSA, record(PYSEC, aliases=[])],
            True,
            True,
            {
                WHEEL_1: (HELD, "held: version 1.0 is affected by the advisory PYSEC-2024-10"),
                SDIST_1_0_1: (
                    HELD,
                    "held: version 1.0.1 is affected by the advisory PYSEC-2024-10",
                ),
            },
        ),
        (
            [record(PYSEC, withdrawn=WITHDRAWN), record(MAL_RELEASE, withdrawn=WITHDRAWN)],
            True,
            True,
            {},
        ),
        (
            [record(MAL_PROJECT, affected=pypi(), summary=None)],
            True,
            False,
            dict.fromkeys(
                (WHEEL_1, SDIST_1_0_1, WHEEL_2, NIGHTLY),
                (BLOCKED, "blocked by the malicious-package advisory MAL-2024-200"),
            ),
        ),
        ([MAL_PROJECT], True, True, {}),  # another project's
    ],
)
def test_what_advisories_refuse(
    data: list[dict[str, Any]],
    block_malicious: bool,
    hold_advisories: bool,
    expected: dict[str, tuple[str, str]],
) -> None:
    advisories = [parse_record(d) for d in data]
    refused = refusals(
        DEMO_PAGE, advisories, block_malicious=block_malicious, hold_advisories=hold_advisories
    )
    assert {f: (h.kind, h.reason) for f, h in refused.items()} == expected
    assert all(h.until is None for h in refused.values())  # no waiting lifts an advisory


def test_a_malicious_project_is_blocked_whole() -> None:
    typosquat = page("Demo.Lbi", "demo_lbi-0.1-py3-none-any.whl", "demo-lbi-nightly.zip")
    refused = refusals(
        typosquat, [parse_record(MAL_PROJECT)], block_malicious=True, hold_advisories=False
    )
    assert set(refused) == {f.filename for f in typosquat.files}
    message = refused["demo-lbi-nightly.zip"].message("demo-lbi-nightly.zip")
    assert message == (
        "demo-lbi-nightly.zip is blocked by the malicious-package advisory MAL-2024-200:"
        " Malicious code in demo-lbi (PyPI)."
    )


def test_a_malicious_release_is_blocked_in_its_local_builds() -> None:
    """A MAL- record listing 1.0.1 blocks the release's local builds and other spellings of
    it, and nothing else."""
    builds = page(
        "demo-lib",
        "demo_lib-1.0.1+cpu-py3-none-any.whl",
        "demo_lib-1.0.1.0+cu118-cp312-cp312-manylinux_2_17_x86_64.whl",
        "demo_lib-1.0.01.tar.gz",
        "demo_lib-1.0.1.post1+cpu-py3-none-any.whl",
        "demo_lib-1.0.2+cpu-py3-none-any.whl",
    )
    refused = refusals(
        builds, [parse_record(MAL_RELEASE)], block_malicious=True, hold_advisories=False
    )
    assert sorted(refused) == sorted(f.filename for f in builds.files[:3])
    assert {h.reason for h in refused.values()} == {BLOCKED_RELEASE[1]}


def test_a_page_is_looked_up_once_per_version_not_per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project with many advisories and many files per version: the advisories are read
    once per version (80 advisories on a 2,400-file page took 730 ms file by file), and
    once for the files whose version is unknown."""
    looked_up = counted(monkeypatch, osv, "_in_range", lambda version, _: str(version))
    unknown = counted(monkeypatch, Advisory, "affects", lambda _, name, version: str(version))
    tags = ("py3-none-any", "cp312-cp312-win_amd64", "cp313-cp313-win_amd64")
    files = [f"demo_lib-{v}-{t}.whl" for v in ("1.0", "1.5", "2.0") for t in tags]
    files.append("demo_lib-1.5.0-py3-none-any.whl")  # the version 1.5, spelled otherwise
    refused = refusals(
        page("demo-lib", *files, "demo-lib-nightly.zip"),
        [parse_record(PYSEC)],
        block_malicious=True,
        hold_advisories=True,
    )
    assert sorted(refused) == sorted(f for f in files if "-2.0-" not in f)  # fixed in 2.0
    assert looked_up == Counter(["1.0", "1.5", "2.0"]) and unknown == Counter(["None"])
    assert refused["demo_lib-1.5.0-py3-none-any.whl"].reason == HELD_PYSEC[1].format("1.5.0")


def test_a_range_is_evaluated_only_at_the_versions_near_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's hundreds of advisories, each on a few of its hundreds of versions: each
    range is evaluated between its bounds only (80 advisories at each of 200 versions took
    44 ms of a big page's first build)."""
    evaluated = counted(monkeypatch, osv, "_in_range", lambda version, _: str(version))
    versions = [f"1.{i}" for i in range(200)]
    records = [
        record(PYSEC, id=f"PYSEC-2024-{i}", affected=pypi(ranges=[{"type": "ECOSYSTEM", "events": [
            {"introduced": versions[i]}, {"fixed": versions[i + 1]}]}]))
        for i in range(0, 160, 2)
    ]  # fmt: skip
    refused = refusals(
        page("demo-lib", *(f"demo_lib-{v}-py3-none-any.whl" for v in versions)),
        [parse_record(r) for r in records],
        block_malicious=True,
        hold_advisories=True,
    )
    assert sorted(refused) == sorted(f"demo_lib-1.{i}-py3-none-any.whl" for i in range(0, 160, 2))
    assert sum(evaluated.values()) == 2 * len(records)  # introduced and fixed: the bounds


ADVISORIES = [
    parse_record(d)
    for d in (PYSEC, MAL_RELEASE, GHSA, record(PYSEC, id="PYSEC-2024-9", withdrawn=WITHDRAWN))
]
PYSEC_ENTRY = {
    "aliases": ["CVE-2024-1111"],
    "details": "A crafted header makes the parser loop forever.",
    "fixed_in": ["2.0"],
    "id": "PYSEC-2024-10",
    "link": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
    "source": "osv",
    "summary": "",
    "withdrawn": None,
}
GHSA_ENTRY = {
    "aliases": ["CVE-2024-2222", "PYSEC-2024-11"],
    "details": "Archive members may be written outside the target directory.",
    "fixed_in": ["1.4.1"],
    "id": "GHSA-aaaa-bbbb-cccc",
    "link": "https://github.com/demo/lib/security",
    "source": "osv",
    "summary": "Path traversal in demo-lib",
    "withdrawn": None,
}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.3", [GHSA_ENTRY, PYSEC_ENTRY]),  # sorted by id
        ("1.0.1", [PYSEC_ENTRY]),  # the malicious-package advisory is no vulnerability
        ("1.4.1", [PYSEC_ENTRY]),
        ("2.0", []),
    ],
)
def test_the_json_api_vulnerabilities(version: str, expected: list[dict[str, object]]) -> None:
    assert vulnerabilities(ADVISORIES, DEMO, Version(version)) == expected
    assert json.loads(json.dumps(expected)) == expected  # plain JSON


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "PYSEC-2024-10.json: not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"\xff\xfe{}", "PYSEC-2024-10.json: not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "PYSEC-2024-10.json: nested too deeply"),
        (b'{"id": "X-1", "modified": 1' + b"0" * 5000 + b"}", None),  # too long for an int
        (b"[]", "PYSEC-2024-10.json: not an object"),
        (b'{"id": "X-1"}', "PYSEC-2024-10.json: no 'modified'"),
        (
            b'{"id": "X-1", "modified": "m", "affected": [{"package": {}}]}',
            "PYSEC-2024-10.json: 'affected[0].package' has no 'name'",
        ),
    ],
)
def test_bad_bytes_name_their_source(body: bytes, message: str | None) -> None:
    with pytest.raises(InvalidAdvisory) as caught:
        parse_bytes("PYSEC-2024-10.json", body)
    assert str(caught.value).startswith("PYSEC-2024-10.json: ")
    if message is not None:
        assert str(caught.value) == message


def test_bytes_of_a_record_parse() -> None:
    assert parse_bytes("PYSEC-2024-10.json", json.dumps(PYSEC).encode()) == parse_record(PYSEC)
    huge = json.dumps(pypi(versions=["1" * 5000, "1.0"]))  # a version no int can hold is left out
    body = f'{{"id": "X-1", "modified": "m", "affected": {huge}}}'.encode()
    assert parse_bytes("x.json", body).affected[0].versions == {Version("1.0")}


# Hostile input, generated: bytes, any JSON value, records, and records with any value in one
# place. Deterministic, as in test_properties.py.
HOSTILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
)
versions = st.sampled_from(["0", "1.0", "1.0.1", "2.0rc1", "*", "not a version"]) | st.text()
events = st.dictionaries(
    st.sampled_from(["introduced", "fixed", "last_affected", "limit", "other"]),
    versions,
    max_size=2,
)
ranges = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["ECOSYSTEM", "GIT", "SEMVER"]),
        "events": st.lists(events, max_size=5),
    }
)
entries = st.fixed_dictionaries(
    {
        "package": st.fixed_dictionaries(
            {
                "ecosystem": st.sampled_from(["PyPI", "npm"]),
                "name": st.sampled_from(["demo-lib", "Demo_Lib", "x"]),
            }
        )
    },
    optional={"versions": st.lists(versions, max_size=4), "ranges": st.lists(ranges, max_size=3)},
)
records = st.fixed_dictionaries(
    {"id": st.sampled_from(["MAL-2024-1", "PYSEC-2024-1"]), "modified": st.just(MODIFIED)},
    optional={
        "withdrawn": st.just(MODIFIED),
        "summary": st.text(),
        "aliases": st.lists(st.text(), max_size=3),
        "references": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["WEB", "ADVISORY"]), "url": st.text(min_size=1)}
            ),
            max_size=2,
        ),
        "affected": st.lists(entries, max_size=3),
    },
)


def places(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON value, at any depth."""
    if isinstance(value, dict):
        keys = list(value)
    elif isinstance(value, list):
        keys = list(range(len(value)))
    else:
        return []
    found = []
    for key in keys:
        found += [(value, key), *places(value[key])]
    return found


@st.composite
def corrupted(draw: st.DrawFn) -> dict[str, Any]:
    """A record with one value, anywhere in it, replaced by any JSON value."""
    data = draw(records)
    container, key = draw(st.sampled_from(places(data)))
    container[key] = draw(json_values)
    return data


@HOSTILE
@given(st.one_of(st.binary(), json_values, records, corrupted()))
def test_any_bytes_are_an_advisory_or_invalid(value: object) -> None:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    try:
        advisory = parse_bytes("x.json", body)
    except InvalidAdvisory as exc:
        assert str(exc).startswith("x.json: ")
        return
    for version in (None, Version("0.1"), Version("1.0.1"), Version("2.0")):
        advisory.affects(DEMO, version)  # whatever parsed can be evaluated
    vulnerabilities([advisory], DEMO, Version("1.0"))


READABLE = [
    *("0", "0.5", "1.0", "1.0.0", "1.0.1", "1.5", "2.0rc1", "2.0", "2.0.post1", "3.0"),
    *("1.0+cpu", "1.5.0+cu118", "2.0+cpu", "2.0+gpu"),  # local builds: where their release is
]
timelines = st.lists(
    st.builds(
        lambda kind, version: {kind: version},
        st.sampled_from(["introduced", "fixed", "last_affected", "limit"]),
        st.sampled_from(READABLE),
    ),
    min_size=1,
    max_size=6,
)


@HOSTILE
@given(
    timelines.flatmap(lambda e: st.tuples(st.just(e), st.permutations(e))),
    st.sampled_from(READABLE),
)
def test_the_order_of_events_does_not_matter(
    events: tuple[list[dict[str, str]], list[dict[str, str]]], version: str
) -> None:
    listed, shuffled = events
    assert entry(listed).affects(Version(version)) == entry(shuffled).affects(Version(version))


def refused_file_by_file(
    page: ProjectPage, records: list[Advisory], *, block_malicious: bool, hold_advisories: bool
) -> dict[str, Hold]:
    """What refusals decides, by its definition: for each file, the first wanted advisory
    (the malicious first) that affects its version."""
    wanted = [a for a in records if (block_malicious if a.malicious else hold_advisories)]
    wanted.sort(key=lambda a: not a.malicious)
    versions = file_versions(page)
    out = {}
    for f in page.files:
        version = versions.get(f.filename)
        if (found := next((a for a in wanted if a.affects(DEMO, version)), None)) is not None:
            out[f.filename] = osv._hold(found, version)
    return out


osv_entries = st.builds(
    lambda ranges, versions, name: {
        "package": {"ecosystem": "PyPI", "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": events} for events in ranges],
        "versions": versions,
    },
    st.lists(timelines, max_size=2),
    st.lists(st.sampled_from(READABLE), max_size=3),
    st.sampled_from(["demo-lib", "Demo_Lib", "other"]),
)
osv_records = st.lists(
    st.builds(
        lambda malicious, withdrawn, affected: {
            "id": "MAL-2024-1" if malicious else "PYSEC-2024-1",
            "modified": MODIFIED,
            "affected": affected,
            **({"withdrawn": WITHDRAWN} if withdrawn else {}),
        },
        st.booleans(),
        st.booleans(),
        st.lists(osv_entries, min_size=1, max_size=2),
    ),
    min_size=1,
    max_size=5,
).map(lambda records: [parse_record({**r, "id": f"{r['id']}{i}"}) for i, r in enumerate(records)])
page_versions = st.lists(
    st.sampled_from([*READABLE, "1.5.0", "0.9", "4.0", "nightly"]), min_size=1, max_size=12
)


@HOSTILE
@given(osv_records, page_versions, st.booleans(), st.booleans())
def test_a_page_s_refusals_are_each_file_s(
    records: list[Advisory], versions: list[str], block_malicious: bool, hold_advisories: bool
) -> None:
    """refusals evaluates a page's versions at once, each range between its bounds; what it
    refuses, and why, is what each file's own look-up says."""
    demo = page("demo-lib", *(f"demo_lib-{v}.tar.gz" for v in versions))
    flags = {"block_malicious": block_malicious, "hold_advisories": hold_advisories}
    assert refusals(demo, records, **flags) == refused_file_by_file(demo, records, **flags)
