"""Issue 32, the other doors: numbers out of range, text that is not what it seems, model
folders whose files disagree, and messages that must be one clear line. Tables of cases;
the next round adds rows, not files."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.errors import ConfigError, DataError, RevstudyError
from revstudy.files import read_text, replaced_atomically
from revstudy.study.options import LaunchOptions
from revstudy.study.spaces import load_space
from revstudy.training.config import TrialConfig
from revstudy.training.runs import train_repeats, write_run
from revstudy.training.saved import load_model
from revstudy.trialtable import build_trials_table
from tests.conftest import molecule_rows, synthetic_rows, write_csv
from tests.faults.conftest import one_line_error, run, synthetic_study

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


# -- numbers: one range per field, stated by `revstudy spaces --fields` ----------------------
@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"epochs": float("inf")}, "field epochs: expected an integer"),
        ({"epochs": 2.5}, "field epochs: expected an integer"),
        ({"epochs": 10**9}, "field epochs: 1000000000 is outside [1, 100000]"),
        ({"seed": 2**70}, "field seed:"),
        ({"seed": -1}, "field seed: -1 is outside [0, 4294967295]"),
        ({"test_seed": 10**30}, "field test_seed:"),
        ({"blocks": [0, 0, 0, 0, 0]}, "at least one block"),
        ({"blocks": [1, 1, 1, 1, 500]}, "each 0-32"),
        ({"hidden_ratio": 1e6}, "field hidden_ratio: 1000000.0 is outside (0, 8]"),
        ({"kernel_size": 99}, "field kernel_size: 99 is outside [1, 9]"),
        ({"decoder_threshold": float("nan")}, "field decoder_threshold: nan is outside"),
        ({"lr": 1e300}, "field lr:"),
        ({"batch_size": 0}, "field batch_size: 0 is outside"),
        ({"cd_draws": 10**6}, "field cd_draws:"),
        ({"cd_radii": [0.1] * 100}, "field cd_radii: 1-16 radii"),
        ({"val_every": 0}, "field val_every: 0 is outside"),
        ({"y_dim": 3}, "field y_dim: 3: choose 32, 64, 128, 256 or 512"),
        ({"y_dim": 8}, "field y_dim: 8: choose 32, 64, 128, 256 or 512 (divisors of 1024"),
        ({"blocks": [32] * 5, "hidden_ratio": 8.0, "kernel_size": 9}, "over the 250 M a trial"),
    ],
)
def test_a_config_number_outside_its_range_is_one_line(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        TrialConfig.from_dict(fields, source="c.yaml")
    assert needle in str(e.value) and str(e.value).startswith("c.yaml: ")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"epochs": "5"}, "field epochs: expected int, got '5'"),
        ({"lr": True}, "field lr: expected float, got True"),
        ({"atom_order": "file"}, "field atom_order: expected one of source, canonical"),
        ({"blocks": (1, 1, "x", 1, 1)}, "field blocks: expected a tuple of int"),
    ],
)
def test_a_config_built_in_python_is_checked_like_a_file(
    kwargs: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        TrialConfig(**kwargs)


def test_a_space_reaching_outside_a_range_is_refused_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("params:\n  epochs: {type: int, low: 1, high: 10000000}\n")
    with pytest.raises(ConfigError, match=r"parameter epochs: value 10000000: .*\[1, 100000\]"):
        load_space(str(path))


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("seed", 10**23, "--seed 1e+23: must be >= 0 and <= 4294967295"),
        ("num_samples", 10**9, "--num-samples 1e+09: must be >= 1 and <= 1000000"),
        ("repeats", 1000, "--repeats 1000: must be >= 1 and <= 100"),
        ("pack", 0, "--pack 0: must be >= 1 and <= 64"),
    ],
)
def test_a_launch_flag_outside_its_range_names_the_flag(
    option: str, value: Any, needle: str
) -> None:
    with pytest.raises(RevstudyError) as e:
        LaunchOptions(**{option: value}).validate()
    assert str(e.value) == needle


def test_the_ranges_are_listed_with_the_fields() -> None:
    res = run("spaces", "--fields")
    assert res.exit_code == 0
    lines = dict(line.split("  ", 1) for line in res.stdout.splitlines() if "  " in line)
    assert lines["epochs"] == "[1, 100000]" and lines["lr"] == "(0, 10]"
    assert lines["seed"] == "[0, 4294967295]"


# -- text: read whole, as UTF-8, or refused -------------------------------------------------
@pytest.mark.parametrize(
    ("smiles", "needle"),
    [
        ("CC O", "contains white space"),
        ("CC\x00", "contains the character '\\x00'"),
        ("Cé", "contains the character 'é'"),
    ],
)
def test_a_smiles_is_read_whole_or_refused(smiles: str, needle: str) -> None:
    from revstudy.data.chem import hydrocarbon_from_smiles

    with pytest.raises(DataError) as e:
        hydrocarbon_from_smiles(smiles)
    assert needle in str(e.value) and "one word of ASCII characters" in str(e.value)


@pytest.mark.parametrize(("bits", "needle"), [(1023, "1023 characters"), (1100, "1100 characters")])
def test_a_bit_string_of_the_wrong_length_is_named_by_its_length(bits: int, needle: str) -> None:
    from revstudy.elucidation.elucidate import parse_query_spectrum

    with pytest.raises(DataError, match=f"{needle}; the data file's spectrum column has 1024"):
        parse_query_spectrum("0" * (bits - 1) + "1")


def test_a_text_file_that_is_not_utf8_names_the_file_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "mols.smi"
    path.write_bytes(b"CCC\n\xff\xfeCC\n")
    with pytest.raises(RevstudyError, match=r"mols.smi: not UTF-8 text \(byte 0xff at offset 4\)"):
        read_text(path)
    path.write_bytes(b"\xef\xbb\xbfCCC\n")  # a BOM is not part of the text
    assert read_text(path) == "CCC\n"


@pytest.mark.parametrize(
    ("molecule_id", "needle"),
    [
        ("١٢", "expected an integer id of at most 18 digits 0-9, got '١٢'"),
        ("9" * 30, "expected an integer id of at most 18 digits 0-9"),
    ],
)
def test_a_molecule_id_must_be_ascii_digits_that_fit(
    tmp_path: Path, molecule_id: str, needle: str
) -> None:
    rows = synthetic_rows(3)
    rows[1] = (0, rows[1][1], rows[1][2], rows[1][3])
    path = write_csv(tmp_path / "d.csv", rows)
    text = path.read_text(encoding="utf-8").splitlines()
    text[2] = molecule_id + text[2][len(text[2].split(",")[0]) :]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"d.csv:3: field A: {needle}"):
        read_dataset(path)


# -- model folders: their files agree, or the command refuses -------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    ds = read_dataset(write_csv(root / "d.csv", molecule_rows(40)))
    torch.set_num_threads(1)
    write_run(root / "run", train_repeats(TINY.replace(atom_order="canonical"), ds), ds, "cpu")
    return root / "run"


@pytest.fixture()
def copy(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "run"))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace("atom_order: canonical", "atom_order: source"),
         "config.yaml disagrees with metrics.json on atom_order 'source' (trained: 'canonical')"),
        (lambda t: t.replace("relabel: false", "relabel: true"),
         "on relabel True (trained: False)"),
    ],
)  # fmt: skip
def test_an_edited_config_yaml_is_refused_naming_the_setting(
    copy: Path, edit: Any, needle: str
) -> None:
    path = copy / "config.yaml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(RevstudyError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_model(copy)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m.update(repeats="x"), "metrics.json: repeats is damaged"),
        (lambda m: m.update(config={"epochs": "many"}), "metrics.json: its config is damaged"),
    ],
)
def test_an_edited_metrics_json_is_one_line(copy: Path, change: Any, needle: str) -> None:
    doc = json.loads((copy / "metrics.json").read_text())
    change(doc)
    (copy / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(RevstudyError, match=needle):
        load_model(copy)


@pytest.mark.parametrize("bad", [123, "run\x00x", None])
def test_load_model_of_a_wrong_argument_is_one_line(bad: Any) -> None:
    with pytest.raises(RevstudyError, match="expected a path to a folder"):
        load_model(bad)


def test_average_on_a_model_without_relabel_prints_no_half_json(model_dir: Path) -> None:
    pytest.importorskip("rdkit.Chem")
    res = run("predict", "--model", str(model_dir), "--smiles", "CCC", "--average", "2", "--json")
    one_line_error(res, "--average 2", "relabel")
    assert res.stdout == ""


def test_a_row_that_cannot_be_ordered_fails_alone_and_is_named(
    model_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("rdkit.Chem")
    rows = synthetic_rows(3)
    five = "11111" + "0" * 131  # carbon 1 bonded to five others: no molecule
    rows[1] = (77, 1, five, rows[1][3])
    path = tmp_path / "s.csv"
    path.write_bytes(b"\xef\xbb\xbf" + write_csv(tmp_path / "x.csv", rows).read_bytes())  # a BOM
    res = run("predict", "--model", str(model_dir), "--structures", str(path), "--json")
    assert res.exit_code == 2, res.output
    doc = json.loads(res.stdout)
    rows_out = {r["input"]: r for r in doc["predictions"]}
    assert "error" in rows_out["77/1"] and "bins" in rows_out[f"{rows[0][0]}/{rows[0][1]}"]
    assert "error: 77/1:" in res.stderr


# -- messages -----------------------------------------------------------------------------
def test_a_full_disk_names_the_file_being_written(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(OSError) as e, replaced_atomically(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.filename == str(target) and not list(tmp_path.iterdir())


def test_the_full_disk_hint_is_the_commands_not_a_studys() -> None:
    from revstudy.cli.common import STORAGE_HINTS

    assert "run the command again" in STORAGE_HINTS[errno.ENOSPC]


def test_an_objective_that_is_not_a_number_is_damaged_not_silently_unranked(
    study: Path,
) -> None:
    tdir = study / "trials" / "t1"
    tdir.mkdir(parents=True)
    doc = {"config": {"epochs": 1}, "metrics": {"epoch": 1, "f1_macro_skill": "0.9"}}
    (tdir / "result.json").write_text(json.dumps(doc))
    row = build_trials_table(study, {}).set_index("trial_id").loc["t1"]
    assert row.state == "DAMAGED"
    assert "objective f1_macro_skill is '0.9', not a number" in row.failure_reason


def test_a_damaged_table_is_one_warning_line(tmp_path: Path) -> None:
    study = synthetic_study(tmp_path / "st")
    (study / "trials.parquet").write_bytes(b"PAR1 torn")
    res = run("status", str(study))
    assert res.exit_code == 0, res.output
    warning = [line for line in res.stderr.splitlines() if "trials.parquet" in line]
    assert warning and warning[0].startswith("warning: ") and "UserWarning" not in res.stderr


@pytest.mark.parametrize("command", ["status", "report", "export", "resume"])
def test_a_name_too_long_for_the_file_system_is_one_line(command: str) -> None:
    one_line_error(run(command, "a" * 300), "a study name is 1-128")


def test_the_loser_of_two_launches_of_one_new_name_gets_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both saw no study of that name; the winner wrote its study.json while the loser
    waited for the lock: the loser must not write a second study over it."""
    import contextlib

    from revstudy.study import driver

    csv = write_csv(tmp_path / "d.csv", synthetic_rows(40))
    real_lock = driver.study_lock

    @contextlib.contextmanager
    def lost_race(study: Path):  # type: ignore[no-untyped-def]
        with real_lock(study):
            (study / "study.json").write_text('{"name": "race"}')  # the winner's, meanwhile
            yield

    monkeypatch.setattr(driver, "study_lock", lost_race)
    opts = LaunchOptions(space="quick", data=str(csv), name="race", storage=str(tmp_path / "st"))
    with pytest.raises(RevstudyError, match="created by another launch meanwhile"):
        driver.launch(opts, progress=False)
    assert (tmp_path / "st" / "race" / "study.json").read_text() == '{"name": "race"}'
