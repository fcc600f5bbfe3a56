"""Shared fixtures. Real data is read from ../shared/data and never copied into the repo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CSV = REPO.parent / "shared" / "data" / "reversibledata.csv"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, otherwise in collection order (a stable sort): with two workers
    (pytest-xdist, `addopts`) the long Ray studies start early and the short tests fill in
    around them, instead of a long study running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def real_csv() -> Path:
    if not SHARED_CSV.is_file():
        pytest.skip(f"real data not found at {SHARED_CSV} (tests read it from ../shared/data)")
    return SHARED_CSV


def synthetic_rows(n: int, seed: int = 0) -> list[tuple[int, int, str, str]]:
    """Made-up rows in the paper's format: random chains/rings of up to 8 carbons."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        grid = np.zeros((16, 16), dtype=int)
        n_c = int(rng.integers(2, 9))
        for a in range(n_c - 1):  # chain: carbon a bonded to a+1 → grid[a, a]
            grid[a, a] = int(rng.choice([1, 1, 1, 2]))
        if n_c >= 6 and rng.random() < 0.5:  # an aromatic six-ring on carbons 0..5
            for a in range(5):
                grid[a, a] = 6 if a % 2 == 0 else 7
            grid[0, 4] = 7
        iu = np.triu_indices(16)
        c = "".join(str(v) for v in grid[iu])
        bits = np.zeros(1024, dtype=int)
        bits[rng.choice(700, size=n_c, replace=False)] = 1
        rows.append((1000 + i, 5000 + i, c, "".join(map(str, bits))))
    return rows


def molecule_rows(n: int, seed: int = 0) -> list[tuple[int, int, str, str]]:
    """`synthetic_rows` that RDKit accepts as molecules (a chain double bond next to the
    ring can make a pentavalent carbon): what a canonical atom order needs."""
    from revstudy.data.numbering import canonical_structure
    from revstudy.errors import DataError

    def valid(structure: str) -> bool:
        try:
            canonical_structure(structure)
        except DataError:
            return False
        return True

    return [r for r in synthetic_rows(n, seed) if valid(r[2])]


def write_csv(path: Path, rows: list[tuple[int, int, str, str]], header: str = "A,B,C,D") -> Path:
    path.write_text(header + "\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows))
    return path


@pytest.fixture()
def synthetic_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "synthetic.csv", synthetic_rows(60))


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data cache folder (REVSTUDY_CACHE_DIR), online, no $REVSTUDY_DATA."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("REVSTUDY_CACHE_DIR", str(cache))
    monkeypatch.delenv("REVSTUDY_OFFLINE", raising=False)
    monkeypatch.delenv("REVSTUDY_DATA", raising=False)
    return cache


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, its training CSV) of a tiny model on 60 synthetic rows, trained once for
    the session (the model commands and their API read it; none writes into it)."""
    import torch

    from revstudy.data.dataset import read_dataset
    from revstudy.training.config import TrialConfig
    from revstudy.training.runs import train_repeats, write_run

    root = tmp_path_factory.mktemp("tiny-run")
    csv = write_csv(root / "data.csv", synthetic_rows(60))
    ds = read_dataset(csv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tiny = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)
    try:
        write_run(root / "run", train_repeats(tiny, ds), ds, "cpu")
    finally:
        torch.set_num_threads(threads)
    return root / "run", csv
