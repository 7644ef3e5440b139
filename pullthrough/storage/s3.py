"""Files in S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph...), through boto3.

Objects are `<prefix>ab/cd/<sha256>`. A file is written to a local temporary file and hashed
first (storage.store); only a verified file is uploaded, and an object store shows an object
only once its upload is complete, so no object with bad or partial bytes is ever visible. Reads
stream from the object store; a seek (a Range request) starts a ranged GET.

A request's calls (HEAD, GET, DELETE) have short timeouts and one retry, so an object store
that hangs answers 503 within seconds, not after pip's 15 s timeout; after a timeout the store
is taken for down for `DOWN_SECONDS`, and those calls fail at once meanwhile. Transfers (an
upload, a local copy) keep a long read timeout: a big object's PUT may take a while to answer.
"""

from __future__ import annotations

import io
import logging
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from pullthrough.core.models import is_hex_digest
from pullthrough.core.times import PRESIGNED_MAX
from pullthrough.storage.store import (
    BlobStore,
    Opened,
    ReadFrom,
    StorageUnavailable,
    Unfinished,
    cache_control,
    from_start,
    locked_temporary,
    shard,
)

log = logging.getLogger(__name__)
_MISSING = {"404", "NoSuchKey", "NotFound"}
_CHUNK = 1024 * 1024
DOWN_SECONDS = 5.0  # after a timeout, calls fail at once for this long (no thread waits again)
# A request's calls: a HEAD answers in milliseconds; two tries of 2 s + 4 s at most.
_QUICK = {"connect_timeout": 2, "read_timeout": 4, "retries": {"total_max_attempts": 2}}
# Uploads and local copies: a large object's PUT may be answered only after a while.
_TRANSFER = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}
# A store that hangs (not one that refuses: that fails at once, and may be back the next moment)
_TIMEOUTS = (ConnectTimeoutError, ReadTimeoutError)


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
    # The endpoint clients reach, for presigned URLs; None: endpoint_url (the server's own)
    public_endpoint_url: str | None = None


def presigned_expiry(seconds: float) -> int:
    """X-Amz-Expires for a URL valid at least `seconds` (whole, as config makes them) from
    now: one more, as the URL's X-Amz-Date is this second's start (a URL of 2 s signed at .9
    lived 1.1 s), up to S3's week."""
    return min(int(seconds) + 1, PRESIGNED_MAX)


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
        self.client: Any = self._client(_QUICK)  # HEAD, GET, DELETE: a request waits on them
        self.transfers: Any = self._client(_TRANSFER)  # PUT, multipart upload, local copies
        # Presigned URLs: SigV4 signs the Host header, so a URL for clients is signed by a
        # client of the endpoint they reach (it makes no calls), not rewritten after signing.
        self.presigner: Any = (
            self._client(_QUICK, location.public_endpoint_url)
            if location.public_endpoint_url
            else self.client
        )
        self.transfer = TransferConfig(multipart_threshold=64 * _CHUNK, use_threads=False)
        self._down_until = 0.0
        self.redirects = location.redirect_seconds > 0
        super().__init__(tmp)

    def _client(self, timeouts: dict[str, Any], endpoint_url: str | None = None) -> Any:
        retries = {**timeouts["retries"], "mode": "standard"}
        config = Config(
            s3={"addressing_style": self.location.addressing_style},
            signature_version="s3v4",
            connect_timeout=timeouts["connect_timeout"],
            read_timeout=timeouts["read_timeout"],
            retries=retries,
            max_pool_connections=64,
            # Objects are verified (sha256) before they are uploaded; a CRC of every read
            # (botocore's default) cost a fifth of the CPU of a warm download.
            response_checksum_validation="when_required",
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or self.location.endpoint_url or None,
            region_name=self.location.region or None,
            aws_access_key_id=self.location.access_key_id or None,
            aws_secret_access_key=self.location.secret_access_key or None,
            config=config,
        )

    def call(self, method: str, **args: Any) -> Any:
        """A request's call on the quick client: StorageUnavailable at once while the store is
        taken for down, and for `DOWN_SECONDS` after it times out; ClientError as it is."""
        if time.monotonic() < self._down_until:
            raise StorageUnavailable("the object store timed out a moment ago")
        try:
            return getattr(self.client, method)(**args)
        except _TIMEOUTS as exc:
            self.timed_out()
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc

    def timed_out(self) -> None:
        self._down_until = time.monotonic() + DOWN_SECONDS

    def key(self, sha256: str) -> str:
        return self.prefix + shard(sha256)

    def _head_object(self, sha256: str) -> dict[str, Any] | None:
        try:
            head = self.call("head_object", Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise _unavailable(exc) from exc
        return cast(dict[str, Any], head)

    def _head(self, sha256: str) -> int | None:
        head = self._head_object(sha256)
        return None if head is None else int(head["ContentLength"])

    def written_at(self, sha256: str) -> float | None:
        head = self._head_object(sha256)
        return None if head is None else float(head["LastModified"].timestamp())

    def open(self, sha256: str, *, read_from: ReadFrom | None = None) -> Opened | None:
        """The GET from where the bytes to send start, now: an object deleted (evicted by
        another node) after this is still sent whole, as a GET under way survives it, and one
        deleted before is None, not a broken answer. A whole file is one GET; anything else
        (a Range, a condition) a HEAD, for the size it is placed by, and a GET from where
        `read_from` says; without `read_from` (a HEAD request, a redirect), or where it says no
        bytes are sent (a 304, a 412, a 416), only a HEAD, and a GET when bytes are read after
        all."""
        reader = S3Reader(self, self.key(sha256), 0)
        try:
            if read_from is from_start:
                reader.start(0)
            else:
                if (size := self._head(sha256)) is None:
                    return None
                reader.size = size
                position = None if read_from is None else read_from(sha256, size)
                if position is not None and position < size:
                    reader.start(position)
        except FileNotFoundError:
            return None
        return Opened(cast(BinaryIO, io.BufferedReader(reader, _CHUNK)), reader.size)

    def has(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def delete(self, sha256: str) -> int:
        size = self._head(sha256)
        if size is None:
            return 0
        try:
            self.call("delete_object", Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
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
                    self.transfers.download_fileobj(
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
                    self.transfers.put_object(Bucket=self.bucket, Key=self.key(sha256), Body=body)
            else:
                self.transfers.upload_file(
                    str(tmp_path), self.bucket, self.key(sha256), Config=self.transfer
                )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        finally:
            tmp_path.unlink(missing_ok=True)

    def _ours(self, key: str) -> str | None:
        """The sha256 a key of our own form (`<prefix>ab/cd/<sha256>`) names; None for another."""
        sha256 = key.rpartition("/")[2]
        return sha256 if is_hex_digest(sha256) and self.key(sha256) == key else None

    def files(self) -> Iterator[tuple[str, float]]:
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for found in page.get("Contents", []):
                    if sha256 := self._ours(str(found["Key"])):
                        yield sha256, float(found["LastModified"].timestamp())
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, _TIMEOUTS):
                self.timed_out()
            raise _unavailable(exc) from exc

    def unfinished(self) -> list[Unfinished]:
        """The multipart uploads begun under the prefix, of keys of ours (`<prefix>ab/cd/<sha256>`),
        and neither completed nor aborted: boto3 aborts one that fails, but a process killed
        meanwhile leaves it, and the object store keeps its parts (billed, counted by no one)
        until it is aborted."""
        found = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if sha256 := self._ours(str(upload["Key"])):
                        found.append(Unfinished(sha256, upload["Key"], upload["UploadId"]))
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, _TIMEOUTS):
                self.timed_out()
            raise _unavailable(exc) from exc
        return found

    def abort(self, write: Unfinished) -> None:
        try:
            self.call(
                "abort_multipart_upload",
                Bucket=self.bucket,
                Key=write.key,
                UploadId=write.upload_id,
            )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) != "NoSuchUpload":  # done since
                raise _unavailable(exc) from exc

    def redirect_url(self, sha256: str, filename: str, *, private: bool = False) -> str | None:
        if self.location.redirect_seconds <= 0:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self.key(sha256),
            "ResponseContentDisposition": attachment(filename),
            "ResponseContentType": "application/octet-stream",
            # as the server's own answer says: a stored file never changes, and clients (uv)
            # key what they keep by the URL they asked, not the presigned one; a private
            # file's no shared cache may keep (it would serve it past the URL's expiry)
            "ResponseCacheControl": cache_control(private=private),
        }
        url: str = self.presigner.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=presigned_expiry(self.location.redirect_seconds)
        )
        return url

    def ping(self) -> None:
        """StorageUnavailable unless the bucket answers."""
        try:
            self.call("head_bucket", Bucket=self.bucket)
        except ClientError as exc:
            raise _unavailable(exc) from exc


def attachment(filename: str) -> str:
    """The Content-Disposition naming a download `filename` (RFC 6266), as werkzeug's send_file
    writes it: a quoted string (an upstream's name may hold `"` or `;`), and a name past ASCII
    in `filename*` (RFC 8187) after an ASCII approximation."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    if filename.isascii():
        return f"attachment; filename={quoted(filename)}"
    simple = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"attachment; filename={quoted(simple)}; filename*=UTF-8''{encoded}"


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
            reply = self.store.call("get_object", **args)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(self.key) from None
            raise _unavailable(exc) from exc
        self.body = reply["Body"]
        self.position = position
        if not position:  # the whole object: its size
            self.size = int(reply["ContentLength"])

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
        try:  # a slow body (one throttled object) fails this answer, not the store's others
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
