"""cluster.yaml validates offline against Ray's own cluster-launcher schema."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_cluster_yaml_is_valid_for_ray() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    doc = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(doc)))
    assert doc["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1
    head = " ".join(doc["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head  # dashboard only on localhost
    assert any("torch==2.13.0" in c for c in doc["setup_commands"])


def test_on_prem_variant_is_valid_too() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    text = (REPO / "cluster.yaml").read_text()
    doc = yaml.safe_load(text)
    block = text.split("and keep the rest.")[1]
    local = yaml.safe_load(
        "\n".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("# "))
    )
    for key in ("available_node_types", "head_node_type", "max_workers", "upscaling_speed"):
        doc.pop(key, None)
    doc.update(local)
    validate_config(prepare_config(doc))
