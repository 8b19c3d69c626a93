"""The model card's section on where the model looks, from explain.json."""

from __future__ import annotations

import json
from pathlib import Path

from convert.card import explain_section
from edge.model_contract import Sidecar

REPO = Path(__file__).resolve().parents[2]


def summary(gradcam: dict | None) -> dict:
    shares = {"eyes_brows": 0.3, "mouth": 0.2, "border": 0.2}
    return {
        "command": "edge-convert explain m.tflite --data p.npz --out d",
        "data": {"split": "publictest", "n": 70},
        "methods": {"gradcam": gradcam, "occlusion": {"patch": 8, "stride": 4}},
        "means": {"faces_occlusion": 70, "faces_gradcam": 70 if gradcam else 0,
                  "subsampled": False, "image": "mean_maps.png"},
        "regions": {"area_share": {"eyes_brows": 0.25, "mouth": 0.1, "border": 0.44},
                    "shares": {"occlusion_int8": {"Angry": shares,
                                                  "Happy": {**shares, "mouth": 0.4}}}},
    }


def test_section_links_the_maps_and_asks_for_the_checkpoint() -> None:
    sidecar = Sidecar.read(REPO / "models" / "emotion_int8.json")
    text = "\n".join(explain_section(summary(None), "../docs/explain/mean_maps.png", sidecar))
    assert "![mean maps per class](../docs/explain/mean_maps.png)" in text
    assert "| Happy | 30% | 40% | 20% |" in text and "| *share of the area* |" in text
    assert "The mouth weighs most for Happy (4.0x)" in text
    assert "Grad-CAM needs the float checkpoint" in text
    assert f"`{sidecar.source_model['path']}`" in text
    assert "Drawn by `edge-convert explain m.tflite" in text


def test_section_with_gradcam_names_the_layer() -> None:
    text = "\n".join(explain_section(summary({"layer": "m2_add", "layer_side": 6}), "m.png",
                                     None))
    assert "Grad-CAM of the float model at `m2_add` (6x6)" in text
    assert "Grad-CAM needs" not in text


def test_shipped_card_links_the_recorded_maps() -> None:
    card = (REPO / "models" / "MODEL.md").read_text()
    recorded = json.loads((REPO / "docs" / "explain" / "explain.json").read_text())
    assert "](../docs/explain/mean_maps.png)" in card
    assert (REPO / "docs" / "explain" / "mean_maps.png").exists()
    assert recorded["models"]["int8"]["sha256"] in card  # the maps are of the shipped model
    assert recorded["data"]["split"] == "publictest" and not recorded["means"]["subsampled"]
    assert "Grad-CAM needs the float checkpoint" in card
