"""The S3 server of section (d): SeaweedFS, as the tests start it, and pullthrough's [storage].

The launcher is the tests' own, tests/support/seaweed.py (`weed server` on 127.0.0.1, every port
free, its data, config and log in the given folder, its process group stopped when its context
ends): this module puts tests/ on sys.path - the only place in bench/ that does - and imports it
from there, so the tests and the benchmark start SeaweedFS the same way.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the `support` package

from bench.common import BenchError, log
from bench.procfs import all_cpu_ticks, tree_pids
from support.seaweed import S3Server, SeaweedError, seaweed_available, seaweed_server

__all__ = ["Seaweed", "seaweed_available", "start_seaweed"]


@dataclass(frozen=True)
class Seaweed:
    """The running S3 server: address and credentials, and its pid (for its CPU time)."""

    s3: S3Server
    pid: int

    def storage_config(self, bucket: str) -> str:
        """pullthrough's [storage] table for its files in `bucket`, created here (empty)."""
        try:
            self.s3.bucket(bucket)
        except Exception as exc:  # botocore's errors: refused, 5xx, a timeout...
            raise BenchError(f"bucket {bucket!r} not created: {exc}") from exc
        settings = {
            "backend": "s3",
            "s3_endpoint_url": self.s3.endpoint_url,
            "s3_bucket": bucket,
            "s3_region": self.s3.region,
            "s3_access_key_id": self.s3.access_key,
            "s3_secret_access_key": self.s3.secret_key,
            "s3_addressing_style": "path",
        }
        return "\n[storage]\n" + "".join(f'{k} = "{v}"\n' for k, v in settings.items())


def start_seaweed(stack: ExitStack, work: Path) -> Seaweed:
    """SeaweedFS with its data in work/seaweed, stopped when `stack` closes."""
    home = work / "seaweed"
    home.mkdir()
    log(f"(d) starting SeaweedFS in {home}")
    try:
        s3 = stack.enter_context(seaweed_server(home))
    except SeaweedError as exc:
        raise BenchError(f"SeaweedFS did not start: {exc}") from exc
    # The `weed` this process started (the launcher keeps its Popen to itself).
    comms = all_cpu_ticks()
    pids = [p for p in tree_pids(os.getpid()) if comms.get(p, ("", 0))[0] == "weed"]
    if len(pids) != 1:
        raise BenchError(f"expected one `weed` child process, found {pids}")
    log(f"(d) SeaweedFS S3 at {s3.endpoint_url}, pid {pids[0]}")
    return Seaweed(s3, pids[0])
