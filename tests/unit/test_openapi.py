"""The OpenAPI document: short ids any new route gets, and only the answers a route can give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI

from api import openapi
from api.main import create_app


@pytest.fixture
def document(embedded_env: Path) -> dict[str, Any]:
    return create_app().openapi()


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        op["operationId"]: op
        for item in doc["paths"].values()
        for method, op in item.items()
        if method in openapi.HTTP_METHODS
    }


def test_a_new_route_gets_a_short_id_from_its_tag_and_name() -> None:
    experiments = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])
    workers = APIRouter(prefix="/api/v1/workers", tags=["workers"])

    @experiments.delete("/{experiment_id}", status_code=204)
    def delete_experiment(experiment_id: str) -> None: ...

    @experiments.get("/{experiment_id}/export")
    def get_export(experiment_id: str) -> dict[str, str]:
        raise NotImplementedError

    @workers.get("")
    def list_workers() -> list[str]:
        raise NotImplementedError

    app = FastAPI(generate_unique_id_function=openapi.operation_id)
    app.include_router(experiments)
    app.include_router(workers)
    openapi.install(app)
    assert set(operations(app.openapi())) == {
        "experiments-delete",
        "experiments-export",
        "workers-list",
    }


@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")
def test_two_routes_with_one_id_are_refused() -> None:
    router = APIRouter(prefix="/a", tags=["runs"])
    router.add_api_route("/x", lambda: None, name="get_metrics")
    router.add_api_route("/y", lambda: None, name="metrics")
    app = FastAPI(generate_unique_id_function=openapi.operation_id)
    app.include_router(router)
    openapi.install(app)
    with pytest.raises(RuntimeError, match="runs-metrics"):
        app.openapi()


def test_every_error_body_is_one_named_model(document: dict[str, Any]) -> None:
    for op_id, op in operations(document).items():
        for code, response in op["responses"].items():
            if code.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                expected = "HTTPValidationError" if code == "422" else "ErrorMessage"
                assert schema == {"$ref": f"#/components/schemas/{expected}"}, (op_id, code)


def test_documented_answers_are_ones_the_route_gives(document: dict[str, Any]) -> None:
    ops = operations(document)
    # A free-form name cannot be invalid; POST /session reads its own body (never FastAPI's 400).
    assert "422" not in ops["presets-get"]["responses"]
    assert "400" not in ops["session-create"]["responses"]
    assert "400" in ops["experiments-submit"]["responses"]
    # Pictures are bytes in the formats the path allows; their data is a typed .json twin.
    assert ops["plots-loss"]["parameters"][1]["schema"]["enum"] == ["png", "svg"]
    assert "image/gif" in ops["plots-activations"]["responses"]["200"]["description"]
    loss = ops["plots-loss-data"]["responses"]["200"]["content"]["application/json"]
    assert loss["schema"] == {"$ref": "#/components/schemas/LossData"}
    findings = ops["experiments-findings"]["responses"]["200"]["content"]["application/json"]
    assert findings["schema"] == {"$ref": "#/components/schemas/Findings"}
    index = ops["plots-index"]["responses"]["200"]["content"]["application/json"]
    assert index["schema"] == {"$ref": "#/components/schemas/PlotIndex"}
