"""The chart ships the same VivifiedPlugin CRD as crds/ (which `make crds` generates)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CRD = "vivified.dev_vivifiedplugins.yaml"


def test_the_charts_crd_is_a_copy_of_the_generated_one() -> None:
    chart_copy = REPO / "charts" / "vivified" / "crds" / CRD
    generated = REPO / "crds" / CRD
    assert chart_copy.read_bytes() == generated.read_bytes(), (
        f"charts/vivified/crds/{CRD} differs from crds/{CRD}; "
        f"run: cp crds/{CRD} charts/vivified/crds/{CRD}"
    )


def test_the_chart_ships_only_the_crds_it_means_to() -> None:
    names = []
    for path in sorted((REPO / "charts" / "vivified" / "crds").iterdir()):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                assert document["kind"] == "CustomResourceDefinition", path
                names.append(document["metadata"]["name"])
    assert sorted(names) == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        "vivifiedplugins.vivified.dev",
    ]
