"""GET /v1/catalog lists what torch and the spec offer, found by introspection."""

from __future__ import annotations

from fastapi.testclient import TestClient

from optimlab.worker.engine.registry import optimizer_classes, scheduler_classes


def test_the_catalog_lists_every_optimizer_scheduler_model_and_data_kind(
        client: TestClient) -> None:
    catalog = client.get("/v1/catalog").json()

    assert {o["name"] for o in catalog["optimizers"]} == set(optimizer_classes())
    assert {s["name"] for s in catalog["schedulers"]} == set(scheduler_classes())
    assert {m["kind"] for m in catalog["models"]} == {"expression", "linear", "logistic", "mlp",
                                                       "cnn"}
    assert {d["kind"] for d in catalog["data"]} == {"inline", "synthetic", "sklearn", "upload"}
    assert set(catalog["sklearn_datasets"]) == {"digits", "iris", "wine", "breast_cancer",
                                                "diabetes"}
    assert {loss["name"] for loss in catalog["losses"]} == {
        "mse", "l1", "huber", "cross_entropy", "bce_with_logits", "none"}
    sgd = next(o for o in catalog["optimizers"] if o["name"] == "SGD")
    assert "stochastic gradient descent" in sgd["description"]
    momentum = next(p for p in sgd["parameters"] if p["name"] == "momentum")
    assert momentum == {"name": "momentum", "required": False, "default": 0, "type": "float"}
    cosine = next(s for s in catalog["schedulers"] if s["name"] == "CosineAnnealingLR")
    t_max = next(p for p in cosine["parameters"] if p["name"] == "T_max")
    assert t_max["required"] is False
    assert "steps" in t_max["note"]
