"""This host's change signal (catalog.generation): a change made through one process is read by
every other at its next request, from the file each keeps mapped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pullthrough.catalog.generation import TOKEN_BYTES, Generation


def test_a_change_is_read_at_once_by_another_holder(tmp_path: Path) -> None:
    path = tmp_path / "generation"
    mine, theirs = Generation(path), Generation(path)
    try:
        before = theirs.read()
        assert len(before) == TOKEN_BYTES and mine.read() == before  # the first one's token
        mine.bump()
        assert theirs.read() == mine.read() != before
    finally:
        mine.close()
        theirs.close()


def test_a_change_in_another_process_is_read_at_once(tmp_path: Path) -> None:
    path = tmp_path / "generation"
    mine = Generation(path)
    try:
        before = mine.read()
        code = (
            "import sys; from pathlib import Path; "
            "from pullthrough.catalog.generation import Generation; "
            "g = Generation(Path(sys.argv[1])); g.bump(); print(g.read().decode()); g.close()"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert mine.read() == done.stdout.strip().encode() != before
    finally:
        mine.close()
