"""Download into the cache: verified, atomic, offline-aware. Uses a local HTTP server only."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from revstudy.data import fetch as fetch_mod
from revstudy.data.fetch import DATA_FILENAME, fetch, install_copy, recorded_data, resolve_data
from revstudy.errors import DataError, RevstudyError

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's cache
BODY = b"A,B,C,D\n" + b"made-up test payload\n" * 5000


class Server:
    """A 127.0.0.1 server: /ok serves BODY, /short promises more bytes than it sends."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if self.path == "/ok":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(BODY)))
                    self.end_headers()
                    self.wfile.write(BODY)
                elif self.path == "/short":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(BODY) + 10_000))
                    self.end_headers()
                    self.wfile.write(BODY[:1000])
                    self.close_connection = True
                else:
                    self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


SHA = hashlib.sha256(BODY).hexdigest()


def test_fetch_downloads_verifies_and_leaves_only_the_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    messages: list[str] = []
    path = fetch(dest, url=server.url("/ok"), sha256=SHA, progress=False, echo=messages.append)
    assert path == dest / DATA_FILENAME
    assert path.read_bytes() == BODY
    assert [p.name for p in dest.iterdir()] == [DATA_FILENAME]
    assert any("verified" in m for m in messages)


def test_fetch_with_progress_bar(server: Server, tmp_path: Path) -> None:
    path = fetch(tmp_path, url=server.url("/ok"), sha256=SHA, progress=True, echo=lambda m: None)
    assert path.read_bytes() == BODY


def test_fetch_keeps_a_verified_file_and_replaces_a_wrong_one(
    server: Server, tmp_path: Path
) -> None:
    fetch(tmp_path, url=server.url("/ok"), sha256=SHA, progress=False, echo=lambda m: None)
    fetch(tmp_path, url=server.url("/ok"), sha256=SHA, progress=False, echo=lambda m: None)
    assert server.requests == ["/ok"]
    (tmp_path / DATA_FILENAME).write_bytes(b"edited")
    fetch(tmp_path, url=server.url("/ok"), sha256=SHA, progress=False, echo=lambda m: None)
    assert (tmp_path / DATA_FILENAME).read_bytes() == BODY


def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"sha256 mismatch.*nothing was saved"):
        fetch(dest, url=server.url("/ok"), sha256="0" * 64, progress=False, echo=lambda m: None)
    assert list(dest.iterdir()) == []


def test_interrupted_download_leaves_nothing(server: Server, tmp_path: Path) -> None:
    with pytest.raises(RevstudyError, match=r"interrupted after 1000 of \d+ bytes"):
        fetch(tmp_path, url=server.url("/short"), sha256=SHA, progress=False, echo=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_one_line(server: Server, tmp_path: Path) -> None:
    with pytest.raises(RevstudyError, match="HTTP 404"):
        fetch(tmp_path, url=server.url("/missing"), sha256=SHA, progress=False, echo=print)
    assert list(tmp_path.iterdir()) == []


def test_bad_sha256_argument(tmp_path: Path) -> None:
    with pytest.raises(RevstudyError, match="64 hex digits"):
        fetch(tmp_path, url="http://127.0.0.1:9/x", sha256="abc", progress=False)


def test_resolve_data_given_path(tmp_path: Path) -> None:
    f = tmp_path / "mine.csv"
    f.write_text("A,B,C,D\n")
    assert resolve_data(str(f), offline=True) == f
    with pytest.raises(DataError, match="not found"):
        resolve_data(str(tmp_path / "nope.csv"))


def test_resolve_data_fetches_into_cache_once(server: Server, isolated_cache: Path) -> None:
    messages: list[str] = []
    kw = {"url": server.url("/ok"), "sha256": SHA, "progress": False, "echo": messages.append}
    path = resolve_data(None, offline=False, **kw)  # type: ignore[arg-type]
    assert path == isolated_cache / DATA_FILENAME
    assert path.read_bytes() == BODY
    assert "fetching" in messages[0]
    assert resolve_data(None, offline=True, sha256=SHA) == path  # cached: no network needed
    assert server.requests == ["/ok"]


@pytest.mark.parametrize("via_env", [False, True])
def test_offline_needs_the_file(
    monkeypatch: pytest.MonkeyPatch, isolated_cache: Path, via_env: bool
) -> None:
    if via_env:
        monkeypatch.setenv("REVSTUDY_OFFLINE", "1")
    with pytest.raises(RevstudyError, match=r"revstudy data fetch.*--data FILE"):
        resolve_data(None, offline=None if via_env else True)
    with pytest.raises(RevstudyError, match="offline"):
        fetch(offline=None if via_env else True, progress=False)
    assert not isolated_cache.exists() or list(isolated_cache.iterdir()) == []


def test_a_damaged_cache_is_fetched_again_never_read(server: Server, isolated_cache: Path) -> None:
    kw = {"url": server.url("/ok"), "sha256": SHA, "progress": False, "echo": lambda m: None}
    path = resolve_data(None, **kw)  # type: ignore[arg-type]
    path.write_bytes(BODY[:-7])  # torn by a crash, or edited
    with pytest.raises(RevstudyError, match=r"damaged \(sha256 differs\).*offline"):
        resolve_data(None, offline=True, sha256=SHA)
    assert resolve_data(None, **kw) == path  # type: ignore[arg-type]
    assert path.read_bytes() == BODY and server.requests == ["/ok", "/ok"]


def test_revstudy_data_names_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine.csv"
    mine.write_text("A,B,C,D\n")
    monkeypatch.setenv("REVSTUDY_DATA", str(mine))
    assert resolve_data(None, offline=True) == mine
    other = tmp_path / "other.csv"
    other.write_text("A,B,C,D\n")
    assert resolve_data(other, offline=True) == other  # --data wins
    monkeypatch.setenv("REVSTUDY_DATA", str(tmp_path / "gone.csv"))
    with pytest.raises(DataError, match=r"gone.csv: data file not found \(from \$REVSTUDY_DATA\)"):
        resolve_data(None)


def test_a_copy_of_the_public_file_is_cached_only_with_its_checksum(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_mod, "DEFAULT_SHA256", SHA)
    copy = tmp_path / "carried.csv"
    copy.write_bytes(BODY)
    assert install_copy(copy, sha256=SHA) == isolated_cache / DATA_FILENAME
    assert (isolated_cache / DATA_FILENAME).read_bytes() == BODY
    assert [p.name for p in isolated_cache.iterdir()] == [DATA_FILENAME]
    assert resolve_data(None, offline=True, sha256=SHA) == isolated_cache / DATA_FILENAME
    copy.write_bytes(b"A,B,C,D\n")
    with pytest.raises(DataError, match=r"carried.csv: sha256 .* is not the public file's"):
        install_copy(copy, sha256=SHA)
    assert (isolated_cache / DATA_FILENAME).read_bytes() == BODY  # the good copy stays


def test_a_recorded_file_is_used_only_with_its_checksum(
    server: Server, tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "study.csv"
    data.write_bytes(BODY)
    assert recorded_data("best.yaml", str(data), SHA) == data
    data.write_bytes(BODY + b"1,2,3,4\n")
    with pytest.raises(DataError, match=r"best.yaml: records data file .*study.csv with sha256"):
        recorded_data("best.yaml", str(data), SHA)
    with pytest.raises(DataError, match=r"gone.csv .*which is not there; pass --data FILE"):
        recorded_data("best.yaml", str(tmp_path / "gone.csv"), "ab" * 32)
    # the public file, recorded on another machine's path: the verified cache serves
    monkeypatch.setattr(fetch_mod, "DEFAULT_SHA256", SHA)
    monkeypatch.setattr(fetch_mod, "DEFAULT_URL", server.url("/ok"))
    got = recorded_data("best.yaml", "/elsewhere/reversibledata.csv", SHA)
    assert got == isolated_cache / DATA_FILENAME and got.read_bytes() == BODY
