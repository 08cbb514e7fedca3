"""deploy/kubernetes: manifests validate, fit together, and the rules match alerts.yml."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from procpilot.exporter import config as exporter_config

from .conftest import REPO

KUBE = REPO / "deploy" / "kubernetes"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
KUSTOMIZATION = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
CRD_SCHEMAS = {
    "ServiceMonitor": "servicemonitor_monitoring.coreos.com_v1.json",
    "PrometheusRule": "prometheusrule_monitoring.coreos.com_v1.json",
}


def manifests() -> dict[str, dict[str, Any]]:
    """kind -> manifest, for every resource the kustomization lists (one object per file)."""
    docs = [yaml.safe_load((KUBE / name).read_text()) for name in KUSTOMIZATION["resources"]]
    return {doc["kind"]: doc for doc in docs}


MANIFESTS = manifests()
CORE_KINDS = sorted(set(MANIFESTS) - set(CRD_SCHEMAS))


def closed(schema: Any) -> Any:
    """The schema with additionalProperties: false wherever properties are listed, so a
    misspelt field fails (the API server would silently prune it)."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        open_ended = "additionalProperties" in out or out.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if "properties" in out and not open_ended:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def test_kustomization_lists_every_manifest_here() -> None:
    generated = {name for gen in KUSTOMIZATION["configMapGenerator"] for name in gen["files"]}
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == set(KUSTOMIZATION["resources"]) | generated


@pytest.mark.parametrize("kind", CORE_KINDS)
def test_core_kinds_validate_strictly(kind: str) -> None:
    try:
        kubernetes_validate.validate(
            MANIFESTS[kind], kubernetes_validate.latest_version(), strict=True
        )
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{kind}: {e.message} at {list(e.path)}")


@pytest.mark.parametrize("kind", sorted(CRD_SCHEMAS))
def test_operator_kinds_validate_against_shared_schemas(kind: str, schemas: Path) -> None:
    schema = closed(json.loads((schemas / CRD_SCHEMAS[kind]).read_text()))
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(MANIFESTS[kind]))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_closed_schemas_reject_a_misspelt_field(schemas: Path) -> None:
    schema = closed(json.loads((schemas / CRD_SCHEMAS["ServiceMonitor"]).read_text()))
    monitor = copy.deepcopy(MANIFESTS["ServiceMonitor"])
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert not jsonschema.Draft7Validator(schema).is_valid(monitor)


def test_prometheusrule_groups_are_those_of_alerts_yml() -> None:
    alerts = yaml.safe_load(ALERTS.read_text())
    assert MANIFESTS["PrometheusRule"]["spec"]["groups"] == alerts["groups"]



def test_daemonset_reads_host_proc_read_only_without_root() -> None:
    pod = MANIFESTS["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert "--procfs=/host/proc" in container["args"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    proc = next(m for m in mounts.values() if m["mountPath"] == "/host/proc")
    assert proc["readOnly"] is True
    assert volumes[proc["name"]]["hostPath"]["path"] == "/proc"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= container["resources"].keys()
    assert container["readinessProbe"]["httpGet"]["path"] == "/"


def test_daemonset_config_comes_from_the_generated_configmap() -> None:
    pod = MANIFESTS["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (generator,) = KUSTOMIZATION["configMapGenerator"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == generator["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    (filename,) = generator["files"]
    assert f"--config.file={mount['mountPath']}/{filename}" in container["args"]


def test_shipped_exporter_config_is_valid() -> None:
    exporter_config.load(str(KUBE / "exporter.yaml"))


def test_service_and_servicemonitor_reach_the_pods() -> None:
    pod_labels = MANIFESTS["DaemonSet"]["spec"]["template"]["metadata"]["labels"]
    service = MANIFESTS["Service"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    (container,) = MANIFESTS["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    monitor = MANIFESTS["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == [port["name"]]
    # The alerts select up{job="procpilot-exporter"}; the job label is the Service name.
    assert service["metadata"]["name"] == "procpilot-exporter"
