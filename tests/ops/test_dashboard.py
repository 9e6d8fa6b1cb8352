"""docs/grafana-dashboard.json: a Grafana dashboard model whose panels query only metrics the
gateway, the api and the worker expose, through a Prometheus datasource variable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from api.routes.metrics import ApiMetrics
from gateway.metrics import GatewayMetrics
from workers.metrics import WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
_METRIC = re.compile(r"\b((?:switchboard|process|python)_[a-z0-9_]+)\b")
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}


def exposed(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can expose, labelled children or not."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def test_the_dashboard_is_a_grafana_10_model_with_a_datasource_variable() -> None:
    dashboard = load()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"] and target["refId"]
    # no two panels overlap
    cells = [
        (x, y)
        for p in panels
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    available = set().union(
        exposed(GatewayMetrics().registry),
        exposed(ApiMetrics().registry),
        exposed(WorkerMetrics().registry),
    )
    queried = {
        name
        for panel in load()["panels"]
        for target in panel.get("targets", [])
        for name in _METRIC.findall(target["expr"])
    }
    queried.update(_METRIC.findall(json.dumps(load()["templating"])))
    assert queried, "no metric found in the dashboard"
    assert queried - available == set()
    # each process has panels
    assert any(n.startswith("switchboard_api_") for n in queried)
    assert any(n.startswith("switchboard_worker_") for n in queried)
    assert "switchboard_connections" in queried and "process_cpu_seconds_total" in queried
