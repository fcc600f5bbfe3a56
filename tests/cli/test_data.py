"""`revstudy data …` through typer's CliRunner: exit codes, one-line errors, outputs."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from revstudy.cli.data import data_app

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's cache
runner = CliRunner()
BODY = b"A,B,C,D\nmade-up bytes for the CLI test\n"


@pytest.fixture
def url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/data.csv"
    httpd.shutdown()
    httpd.server_close()


def write_csv(path: Path) -> Path:
    """Two made-up rows: ethane and ethene."""
    bits = "0" * 100 + "1" + "0" * 923
    path.write_text(f"A,B,C,D\n1,2,1{'0' * 135},{bits}\n3,4,2{'0' * 135},{bits}\n")
    return path


def test_no_args_shows_help() -> None:
    result = runner.invoke(data_app, [])
    assert "fetch" in result.output and "build" in result.output and "info" in result.output


def test_info_tables_and_json(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "d.csv")
    result = runner.invoke(data_app, ["info", "--data", str(csv)])
    assert result.exit_code == 0, result.output
    assert "suspicious rows" in result.stdout
    result = runner.invoke(data_app, ["info", "--data", str(csv), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["rows"] == 2 and info["carbon_histogram"] == {"2": 2}


def test_info_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(data_app, ["info", "--data", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "missing.csv: data file not found" in result.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("A,B,C,D\n1,2,3,4\n")
    result = runner.invoke(data_app, ["info", "--data", str(bad)])
    assert result.exit_code == 2 and "bad.csv:2: field C" in result.stderr

    monkeypatch.setenv("REVSTUDY_OFFLINE", "1")
    result = runner.invoke(data_app, ["info"])
    assert result.exit_code == 2
    assert "revstudy data fetch" in result.stderr and "--data FILE" in result.stderr


def test_fetch(tmp_path: Path, url: str) -> None:
    sha = hashlib.sha256(BODY).hexdigest()
    result = runner.invoke(
        data_app, ["fetch", "--dest", str(tmp_path / "d"), "--url", url, "--sha256", sha]
    )
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.read_bytes() == BODY and "verified" in result.stderr

    result = runner.invoke(
        data_app, ["fetch", "--dest", str(tmp_path / "e"), "--url", url, "--sha256", "0" * 64]
    )
    assert result.exit_code == 2 and "sha256 mismatch" in result.stderr
    assert list((tmp_path / "e").iterdir()) == []

    result = runner.invoke(data_app, ["fetch", "--url", url])
    assert result.exit_code == 2 and "--url and --sha256 go together" in result.stderr


def test_build(tmp_path: Path) -> None:
    chem = pytest.importorskip("rdkit.Chem")
    from revstudy.data.chem import kekule_molblock, smiles_to_structure

    mol = chem.AddHs(chem.MolFromSmiles("CC=C"))
    record = kekule_molblock(mol) + "> <nmrshiftdb2 ID>\n7\n\n> <Spectrum 13C 3>\n"
    record += "19.4;0.0Q;0|133.9;0.0D;1|115.9;0.0T;2|\n\n$$$$\n"
    sdf = tmp_path / "x.sdf"
    sdf.write_text(record)
    out = tmp_path / "x.csv"
    result = runner.invoke(data_app, ["build", "--sdf", str(sdf), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rows written" in result.stdout
    assert out.read_text().splitlines()[1].startswith(f"7,3,{smiles_to_structure('CC=C')},")

    result = runner.invoke(
        data_app, ["build", "--sdf", str(sdf), "--out", str(out), "--elements", "C,N"]
    )
    assert result.exit_code == 2 and result.stderr.startswith("error: elements")


def test_fetch_from_a_local_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An offline machine: a carried copy of the public file goes into the cache, checked."""
    from revstudy.data import fetch as fetch_mod

    monkeypatch.setattr(fetch_mod, "DEFAULT_SHA256", hashlib.sha256(BODY).hexdigest())
    copy = tmp_path / "carried.csv"
    copy.write_bytes(BODY)
    result = runner.invoke(data_app, ["fetch", "--from", str(copy)])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == fetch_mod.cached_data_path()
    assert fetch_mod.cached_data_path().read_bytes() == BODY
    wrong = write_csv(tmp_path / "mine.csv")
    result = runner.invoke(data_app, ["fetch", "--from", str(wrong)])
    assert result.exit_code == 2
    assert "is not the public file's" in result.stderr and "REVSTUDY_DATA" in result.stderr
    result = runner.invoke(data_app, ["fetch", "--from", str(copy), "--dest", str(tmp_path)])
    assert result.exit_code == 2 and "--from caches a copy" in result.stderr
