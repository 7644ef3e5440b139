"""The throwaway S3 server (`s3_server`, in conftest; support.seaweed): what the S3 storage backend
relies on - exact bytes, ranges, sizes, signatures, multipart uploads invisible until complete -
and the outages it can stage."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped, unused-ignore]
from botocore import UNSIGNED  # type: ignore[import-untyped, unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]
from botocore.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    ClientError,
    ConnectionError,
    ReadTimeoutError,
)

from support.seaweed import S3Server

MB = 1024 * 1024
OUTAGE_TIMEOUT = 1.0  # seconds: the clients' connect and read timeout during an outage


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the session's server."""
    return s3_server.bucket(f"test-{uuid.uuid4().hex[:16]}")


def error_code(exc: ClientError) -> tuple[int, str]:
    response: dict[str, Any] = exc.response
    return response["ResponseMetadata"]["HTTPStatusCode"], str(response["Error"]["Code"])


def test_the_server_is_on_loopback_with_credentials(s3_server: S3Server) -> None:
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    assert s3_server.access_key and s3_server.secret_key
    assert s3_server.region


def test_bytes_round_trip_single_and_multipart(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    client = s3_server.client()
    data = os.urandom(3 * MB + 12345)
    client.put_object(Bucket=bucket, Key="single", Body=data)
    assert client.get_object(Bucket=bucket, Key="single")["Body"].read() == data

    big = os.urandom(12 * MB + 777)
    path = tmp_path / "big.bin"
    path.write_bytes(big)
    transfer = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    client.upload_file(str(path), bucket, "multi/big.bin", Config=transfer)
    head = client.head_object(Bucket=bucket, Key="multi/big.bin")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].strip('"').endswith("-3")  # three parts: it was a multipart upload
    assert client.get_object(Bucket=bucket, Key="multi/big.bin")["Body"].read() == big

    back = tmp_path / "back.bin"
    client.download_file(bucket, "multi/big.bin", str(back), Config=transfer)
    assert back.read_bytes() == big


def test_range_get_and_head(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    data = os.urandom(5 * MB + 3)
    client.put_object(Bucket=bucket, Key="obj", Body=data)

    head = client.head_object(Bucket=bucket, Key="obj")
    assert head["ContentLength"] == len(data)

    start, end = 4 * MB - 10, 5 * MB + 1  # across the filer's 4 MB chunks
    part = client.get_object(Bucket=bucket, Key="obj", Range=f"bytes={start}-{end}")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes {start}-{end}/{len(data)}"
    assert part["Body"].read() == data[start : end + 1]

    tail = client.get_object(Bucket=bucket, Key="obj", Range="bytes=-100")
    assert tail["Body"].read() == data[-100:]
    rest = client.get_object(Bucket=bucket, Key="obj", Range=f"bytes={len(data) - 5}-")
    assert rest["Body"].read() == data[-5:]


def test_missing_object_is_404(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    with pytest.raises(ClientError) as get:
        client.get_object(Bucket=bucket, Key="nothing")
    assert error_code(get.value) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as head:
        client.head_object(Bucket=bucket, Key="nothing")
    assert error_code(head.value)[0] == 404


def test_wrong_or_no_credentials_are_refused(s3_server: S3Server, bucket: str) -> None:
    s3_server.client().put_object(Bucket=bucket, Key="secret", Body=b"data")

    def client(**credentials: Any) -> Any:
        import boto3  # type: ignore[import-untyped, unused-ignore]

        return boto3.session.Session().client(
            "s3",
            endpoint_url=s3_server.endpoint_url,
            region_name=s3_server.region,
            **credentials,
        )

    config = Config(s3={"addressing_style": "path"}, proxies={}, retries={"total_max_attempts": 1})
    wrong_secret = client(
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key[::-1],
        config=config,
    )
    unknown_key = client(
        aws_access_key_id="AKNOBODY0000000000000",
        aws_secret_access_key=s3_server.secret_key,
        config=config,
    )
    anonymous = client(config=config.merge(Config(signature_version=UNSIGNED)))
    for other in (wrong_secret, unknown_key, anonymous):
        with pytest.raises(ClientError) as exc:
            other.get_object(Bucket=bucket, Key="secret")
        assert error_code(exc.value)[0] == 403, exc.value
        with pytest.raises(ClientError) as exc:
            other.put_object(Bucket=bucket, Key="other", Body=b"x")
        assert error_code(exc.value)[0] == 403, exc.value
    with pytest.raises(ClientError) as exc:
        wrong_secret.list_buckets()
    assert error_code(exc.value) == (403, "SignatureDoesNotMatch")


def test_multipart_upload_is_invisible_until_complete(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    key = "partial/file.whl"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=os.urandom(5 * MB)
    )

    def invisible() -> None:
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
        with pytest.raises(ClientError) as get:
            client.get_object(Bucket=bucket, Key=key)
        assert error_code(get.value) == (404, "NoSuchKey")
        with pytest.raises(ClientError) as head:
            client.head_object(Bucket=bucket, Key=key)
        assert error_code(head.value)[0] == 404

    invisible()  # halfway
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]

    client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    invisible()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def assert_unavailable(s3_server: S3Server, bucket: str, key: str) -> type[Exception]:
    """A request with short timeouts and no retries fails quickly; returns the error type."""
    quick = s3_server.client(timeout=OUTAGE_TIMEOUT, retries=0)
    started = time.monotonic()
    with pytest.raises((ConnectionError, ReadTimeoutError)) as exc:
        quick.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert time.monotonic() - started < 5 * OUTAGE_TIMEOUT
    return exc.type


def test_paused_server_hangs_then_recovers(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    data = os.urandom(MB)
    client.put_object(Bucket=bucket, Key="kept", Body=data)
    with s3_server.paused():
        assert issubclass(assert_unavailable(s3_server, bucket, "kept"), ReadTimeoutError)
    assert client.get_object(Bucket=bucket, Key="kept")["Body"].read() == data
    client.put_object(Bucket=bucket, Key="after", Body=b"new")
    assert client.get_object(Bucket=bucket, Key="after")["Body"].read() == b"new"


def test_stopped_server_refuses_then_restarts_with_its_data(
    s3_server: S3Server, bucket: str
) -> None:
    client = s3_server.client()
    stored = {f"before/{i}": os.urandom(1000 + i) for i in range(20)}
    stored["kept"] = os.urandom(MB)
    for key, data in stored.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    endpoint = s3_server.endpoint_url
    with s3_server.stopped():
        assert issubclass(assert_unavailable(s3_server, bucket, "kept"), ConnectionError)
    assert s3_server.endpoint_url == endpoint
    assert bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}
    # New objects in the same volume must not overwrite old ones (file ids go on after a restart).
    for i in range(20):
        stored[f"after/{i}"] = os.urandom(1000 + i)
        client.put_object(Bucket=bucket, Key=f"after/{i}", Body=stored[f"after/{i}"])
    for key, data in stored.items():
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key
