"""Download-and-verify: local files, file:// URLs and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopwise.config import Settings
from loopwise.data import fetch, fetch_reviews, reviews_cache_path, sha256_file
from loopwise.errors import ChecksumError, DataError, DownloadError

PAYLOAD = b"text,label\nlovely dress,1\nawful fit,-1\n" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
WRONG_SHA = "0" * 64


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "data.csv"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


@pytest.fixture
def server(source: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the source's directory; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(source.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_local_file_is_verified_and_copied(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "data.csv"
    assert fetch(source, dest, PAYLOAD_SHA) == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["data.csv"]


def test_verified_cache_is_used_without_touching_the_source(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "data.csv"
    fetch(source, dest, PAYLOAD_SHA)
    source.unlink()
    # port 9 (discard) on 127.0.0.1 refuses connections: any network use would raise DownloadError
    assert fetch("http://127.0.0.1:9/data.csv", dest, PAYLOAD_SHA) == dest
    assert dest.read_bytes() == PAYLOAD


def test_bad_checksum_keeps_nothing(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "data.csv"
    with pytest.raises(ChecksumError) as caught:
        fetch(source, dest, WRONG_SHA)
    message = str(caught.value)
    assert str(source) in message and WRONG_SHA in message and PAYLOAD_SHA in message
    assert _leftovers(dest.parent) == []


def test_corrupted_cache_is_fetched_again(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "data.csv"
    fetch(source, dest, PAYLOAD_SHA)
    dest.write_bytes(b"truncated")
    fetch(source, dest, PAYLOAD_SHA)
    assert sha256_file(dest) == PAYLOAD_SHA


def test_corrupted_cache_with_bad_source_leaves_the_cache_empty(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "data.csv"
    dest.parent.mkdir()
    dest.write_bytes(b"stale")
    source.write_bytes(b"also wrong")
    with pytest.raises(ChecksumError):
        fetch(source, dest, PAYLOAD_SHA)
    assert _leftovers(dest.parent) == []


def test_file_url(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "data.csv"
    fetch(source.as_uri(), dest, PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file at"):
        fetch(tmp_path / "nope.csv", tmp_path / "cache" / "x.csv", PAYLOAD_SHA)


def test_http_download_streams_with_progress(server: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    seen: list[tuple[int, int | None]] = []
    path = fetch_reviews(
        settings,
        url=f"{server}/data.csv",
        expected_sha256=PAYLOAD_SHA,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == settings.resolved_cache_dir / "reviews" / "womens_clothing_ecommerce_reviews.csv"
    assert path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_http_download_with_bad_checksum(server: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(ChecksumError, match=WRONG_SHA):
        fetch_reviews(settings, url=f"{server}/data.csv", expected_sha256=WRONG_SHA)
    assert _leftovers(reviews_cache_path(settings).parent) == []


def test_http_not_found_names_the_url(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"404") as caught:
        fetch(f"{server}/missing.csv", tmp_path / "x.csv", PAYLOAD_SHA)
    assert f"{server}/missing.csv" in str(caught.value)
    assert not (tmp_path / "x.csv").exists()


def test_offline_download_suggests_a_local_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", reviews_url="http://127.0.0.1:9/reviews.csv")
    with pytest.raises(DownloadError) as caught:
        fetch_reviews(settings)
    assert "http://127.0.0.1:9/reviews.csv" in str(caught.value)
    assert "--file" in str(caught.value)
    assert _leftovers(reviews_cache_path(settings).parent) == []


def test_reviews_from_a_local_copy_match_the_known_digest(reviews_csv: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    path = fetch_reviews(settings, source_file=reviews_csv)
    assert sha256_file(path) == settings.reviews_sha256
    # cached and verified: no network, even with an unreachable URL
    assert fetch_reviews(settings, url="http://127.0.0.1:9/x.csv") == path


def test_a_wrong_local_file_is_reported_even_when_the_cache_is_good(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(b"review,label\nfine,1\n")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "reviews.csv"
    assert fetch(good, dest, digest) == dest
    wrong = tmp_path / "wrong.csv"
    wrong.write_bytes(b"something else\n")
    with pytest.raises(ChecksumError, match=r"wrong\.csv"):
        fetch(wrong, dest, digest)
    assert dest.read_bytes() == good.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["reviews.csv"]
