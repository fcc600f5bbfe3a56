from __future__ import annotations

from pathlib import Path

import pytest

from revstudy.errors import ConfigError
from revstudy.study.spaces import load_fixed_config
from revstudy.training.config import TrialConfig


def test_yaml_round_trip(tmp_path: Path) -> None:
    c = TrialConfig(blocks=(1, 2, 3, 4, 5), y_dim=64, lr=3e-4, latent_loss="mmd", latent_weight=0.1)
    c.save_yaml(tmp_path / "c.yaml", header={"study": "s"})
    assert TrialConfig.load_yaml(tmp_path / "c.yaml") == c


def test_bare_mapping_and_yaml_number_strings(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("lr: 1e-4\nepochs: 3\n")  # PyYAML reads 1e-4 as a string
    c = TrialConfig.load_yaml(tmp_path / "c.yaml")
    assert c.lr == 1e-4 and c.epochs == 3


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("y_dim: 100\n", "field y_dim"),
        ("lr: fast\n", "field lr"),
        ("epochs: 2.5\n", "field epochs: expected an integer"),
        ("bogus: 1\n", "unknown field(s) bogus"),
        ("decoder: magic\n", "field decoder: expected one of"),
        ("blocks: [1, 2]\n", "field blocks"),
        ("latent_weight: 0.1\n", "latent_loss"),
        ("- 1\n", "expected a mapping"),
        # read as the defaults, a truncated or wrong file trained under settings nobody chose
        ("", "empty, holds no configuration"),
        ("# comments alone\n", "empty, holds no configuration"),
    ],
)
def test_bad_configs_name_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        TrialConfig.load_yaml(path)
    assert needle in str(e.value) and str(path) in str(e.value)


def test_an_explicit_empty_mapping_asks_for_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("{}\n")
    assert TrialConfig.load_yaml(tmp_path / "c.yaml") == TrialConfig()


def test_paper_config_holds_the_papers_settings() -> None:
    c = load_fixed_config("paper")
    assert c.blocks == (2, 2, 4, 6, 8) and c.y_dim == 128 and c.epochs == 5
    assert (c.lambda_x, c.lambda_sparse, c.lambda_density, c.alpha, c.logit_reg) == (
        8e-5,
        5e-4,
        5e-2,
        8.0,
        1e-3,
    )
    assert c.lr == 1e-3 and c.batch_size == 32


def test_reference_behaviour_is_the_cited_commits() -> None:
    """RevMolSpec04.py at d98d575 (the paper's) and HEAD: density term sigmoid(alpha * x)."""
    from revstudy.training.config import REFERENCE_BEHAVIOUR

    assert REFERENCE_BEHAVIOUR["density_soft"] is True
    assert REFERENCE_BEHAVIOUR["density_centre"] == 0.0
    assert REFERENCE_BEHAVIOUR["spectrum_weighting"] == "reference"
    TrialConfig().replace(**REFERENCE_BEHAVIOUR)  # a valid configuration
