"""Files in S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph...), through boto3.

Objects are `<prefix>ab/cd/<sha256>`. A file is written to a local temporary file and hashed
first (storage.store); only a verified file is uploaded, and an object store shows an object
only once its upload is complete, so no object with bad or partial bytes is ever visible. Reads
stream from the object store; a seek (a Range request) starts a ranged GET.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pullthrough.storage.store import (
    BlobStore,
    Opened,
    StorageUnavailable,
    locked_temporary,
    shard,
)

log = logging.getLogger(__name__)
_MISSING = {"404", "NoSuchKey", "NotFound"}
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class S3Location:
    endpoint_url: str | None
    bucket: str
    region: str
    prefix: str
    access_key_id: str
    secret_access_key: str
    addressing_style: str  # auto, path, virtual
    redirect_seconds: float  # > 0: clients are redirected to presigned URLs valid this long


def _unavailable(exc: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"the object store failed: {type(exc).__name__}: {exc}")


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return str(error.get("Code")) in _MISSING


class S3Store(BlobStore):
    def __init__(self, location: S3Location, tmp: Path) -> None:
        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix.strip("/") + "/" if location.prefix.strip("/") else ""
        config = Config(
            s3={"addressing_style": location.addressing_style},
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=64,
            # Objects are verified (sha256) before they are uploaded; a CRC of every read
            # (botocore's default) cost a fifth of the CPU of a warm download.
            response_checksum_validation="when_required",
        )
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=location.endpoint_url or None,
            region_name=location.region or None,
            aws_access_key_id=location.access_key_id or None,
            aws_secret_access_key=location.secret_access_key or None,
            config=config,
        )
        self.transfer = TransferConfig(multipart_threshold=64 * _CHUNK, use_threads=False)
        super().__init__(tmp)

    def key(self, sha256: str) -> str:
        return self.prefix + shard(sha256)

    def _head(self, sha256: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        return int(head["ContentLength"])

    def open(self, sha256: str) -> Opened | None:
        """A HEAD now; the GET when the bytes are read, from where they are wanted (a HEAD
        request, a redirect or a 304 never start one; a Range starts at its first byte)."""
        size = self._head(sha256)
        if size is None:
            return None
        reader = S3Reader(self, self.key(sha256), size)
        return Opened(cast(BinaryIO, io.BufferedReader(reader, _CHUNK)), size)

    def has(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def delete(self, sha256: str) -> int:
        size = self._head(sha256)
        if size is None:
            return 0
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        return size

    @contextmanager
    def local_path(self, sha256: str) -> Iterator[Path]:
        """A copy in the temporary folder, locked while in use like a writer's file (a killed
        process's copy is removed as an abandoned download is)."""
        fh, path = locked_temporary(self.tmp, "w+b")
        try:
            with fh:
                try:
                    self.client.download_fileobj(
                        self.bucket, self.key(sha256), fh, Config=self.transfer
                    )
                except ClientError as exc:
                    if _missing(exc):
                        raise FileNotFoundError(f"{sha256} is not stored") from None
                    raise _unavailable(exc) from exc
                except BotoCoreError as exc:
                    raise _unavailable(exc) from exc
                fh.flush()
                yield path
        finally:
            path.unlink(missing_ok=True)

    def publish(self, tmp_path: Path, sha256: str) -> None:
        try:
            if tmp_path.stat().st_size < self.transfer.multipart_threshold:
                with tmp_path.open("rb") as body:  # one PUT, without the transfer manager
                    self.client.put_object(Bucket=self.bucket, Key=self.key(sha256), Body=body)
            else:
                self.client.upload_file(
                    str(tmp_path), self.bucket, self.key(sha256), Config=self.transfer
                )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        finally:
            tmp_path.unlink(missing_ok=True)

    def redirect_url(self, sha256: str, filename: str) -> str | None:
        if self.location.redirect_seconds <= 0:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self.key(sha256),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": "application/octet-stream",
        }
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=int(self.location.redirect_seconds)
        )
        return url

    def ping(self) -> None:
        """StorageUnavailable unless the bucket answers."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc


class S3Reader(io.RawIOBase):
    """An object of known size, read as a seekable file: a GET from the position when bytes
    are first wanted, again after a seek."""

    def __init__(self, store: S3Store, key: str, size: int) -> None:
        self.store, self.key = store, key
        self.size = size
        self.position = 0
        self.body: Any = None

    def start(self, position: int) -> None:
        """GET from `position` on; FileNotFoundError if the object is gone (evicted)."""
        self._drop()
        args: dict[str, Any] = {"Bucket": self.store.bucket, "Key": self.key}
        if position:
            args["Range"] = f"bytes={position}-"
        try:
            reply = self.store.client.get_object(**args)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(self.key) from None
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        self.body = reply["Body"]
        self.position = position

    def _drop(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        target = max(0, base + offset)
        if target != self.position:
            self._drop()  # the next read starts a GET from there
            self.position = target
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size:
            return 0
        if self.body is None:
            self.start(self.position)
        try:
            data = self.body.read(len(buffer))
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        n = len(data)
        buffer[:n] = data
        self.position += n
        return n

    def close(self) -> None:
        self._drop()
        super().close()
