"""Local yanks (PEP 592) on a page: which files a yank covers, and the mark it leaves."""

from __future__ import annotations

import pytest
from packaging.version import Version

from pullthrough.core.models import DistFile, ProjectPage
from pullthrough.core.yanks import Yank, apply_yanks

PAGE = ProjectPage(
    "demo",
    (
        DistFile("demo-1.0.tar.gz", "u"),
        DistFile("demo-1.0-py3-none-any.whl", "u"),
        DistFile("demo-2.0.tar.gz", "u", yanked="upstream's reason"),
        DistFile("demo-latest.zip", "u"),  # no version
    ),
)


@pytest.mark.parametrize(
    ("yanks", "expected"),
    [
        ([], [False, False, "upstream's reason", False]),
        ([Yank(Version("1.0"), reason="bad")], ["bad", "bad", "upstream's reason", False]),
        ([Yank(Version("1.0.0"))], [True, True, "upstream's reason", False]),  # 1.0 == 1.0.0
        ([Yank(filename="demo-1.0.tar.gz")], [True, False, "upstream's reason", False]),
        ([Yank(Version("2.0"), reason="ours")], [False, False, "ours", False]),
        ([Yank(Version("3.0"))], [False, False, "upstream's reason", False]),
        (
            [Yank(filename="demo-1.0.tar.gz", reason="a"), Yank(Version("1.0"), reason="b")],
            ["a", "b", "upstream's reason", False],
        ),
    ],
)
def test_yanks_mark_what_they_cover(yanks: list[Yank], expected: list[object]) -> None:
    page = apply_yanks(PAGE, yanks)
    assert [f.yanked for f in page.files] == expected
    assert [f.filename for f in page.files] == [f.filename for f in PAGE.files]
