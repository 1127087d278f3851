"""The deployment files, validated offline: Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate, strict), the Compose file against the Compose specification
(compose-spec), and what each must say for FUSOU to run: commands, probes, schedules, limits,
configuration names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import compose_spec
import kubernetes_validate
import pytest
import yaml

from fusou.app import SERVICES
from fusou.auth.tokens import Role, configured_tokens, hash_token
from fusou.config import VARIABLES, ConfigError, Settings
from fusou.config.sections import DEFAULT_FLIGHT_PORT

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
KUBERNETES_VERSION = "1.30"
KNOWN = {v.env for v in VARIABLES} | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

Doc = dict[str, Any]


def documents(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifests(directory: Path) -> list[tuple[Path, Doc]]:
    return [
        (path, doc)
        for path in sorted(directory.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in documents(path)
    ]


def of_kind(kind: str) -> list[Doc]:
    return [doc for _, doc in manifests(BASE) if doc["kind"] == kind]


def config_map() -> dict[str, str]:
    (found,) = [d for d in of_kind("ConfigMap") if d["metadata"]["name"] == "fusou-config"]
    return dict(found["data"])


@pytest.mark.parametrize(
    ("path", "doc"),
    manifests(BASE) + manifests(OVERLAY),
    ids=lambda v: v.name if isinstance(v, Path) else v["kind"] + "/" + v["metadata"]["name"],
)
def test_every_kubernetes_manifest_is_valid(path: Path, doc: Doc) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_caught() -> None:
    # The validation above can fail: a misspelt field of a real manifest is refused.
    deployment = json.loads(json.dumps(of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomizations_name_files_that_exist_and_patch_what_the_base_holds() -> None:
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = {BASE / r for r in base["resources"]}
    assert listed == {p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"}
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    for resource in overlay["resources"]:
        assert (OVERLAY / resource).exists(), resource
    names = {(d["kind"], d["metadata"]["name"]) for _, d in manifests(BASE)}
    for patch in overlay["patches"]:
        target = yaml.safe_load((OVERLAY / patch["path"]).read_text())
        assert (target["kind"], target["metadata"]["name"]) in names
    for replicas in overlay["replicas"]:
        assert ("Deployment", replicas["name"]) in names
    (secret,) = overlay["secretGenerator"]
    assert secret["name"] == "fusou-secrets"
    assert {line.split("=", 1)[0] for line in secret["literals"]} <= KNOWN


def test_each_service_runs_as_a_deployment_behind_a_service() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    assert set(deployments) == {f"fusou-{name}" for name in SERVICES}
    assert set(services) == set(deployments)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["args"] == ["serve", name.removeprefix("fusou-")]
        assert container["image"] == "fusou"
        labels = pod["metadata"]["labels"]
        selector = services[name]["spec"]["selector"]
        assert selector.items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ports = {p["name"]: p for p in services[name]["spec"]["ports"]}
        container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if name == "fusou-reader":
            # Arrow Flight beside gRPC, on the port the server opens by default.
            flight = ports.pop("flight")
            assert (flight["port"], flight["targetPort"]) == (DEFAULT_FLIGHT_PORT, "flight")
            assert container_ports.pop("flight") == DEFAULT_FLIGHT_PORT
        assert set(ports) == {"grpc", "metrics"} == set(container_ports)
        grpc_port, metrics = ports["grpc"], ports["metrics"]
        assert (grpc_port["port"], grpc_port["targetPort"], grpc_port["appProtocol"]) == (
            50051,
            "grpc",
            "grpc",
        )
        assert (metrics["port"], metrics["targetPort"]) == (9464, "metrics")


def test_pods_declare_their_metrics_port_for_prometheus() -> None:
    port = int(config_map()["FUSOU_METRICS_PORT"])
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == port
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


def test_deployments_probe_liveness_and_readiness_over_grpc_with_limits() -> None:
    config = config_map()
    grace = float(config["FUSOU_SHUTDOWN_GRACE_S"]) + float(config["FUSOU_SHUTDOWN_DRAIN_S"])
    assert config["FUSOU_LOG_FORMAT"] == "json"
    port = int(config["FUSOU_GRPC_PORT"])
    for deployment in of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert {p["name"]: p["containerPort"] for p in container["ports"]}["grpc"] == port
        for probe in ("startupProbe", "livenessProbe"):
            # The overall status (no service name): SERVING while the process lives.
            assert container[probe]["grpc"] == {"port": port}
        assert container["readinessProbe"]["grpc"] == {"port": port, "service": "readiness"}
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"fusou-config", "fusou-secrets"}
        assert spec["terminationGracePeriodSeconds"] > grace
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts  # where the decoder's compiled code is cached


@pytest.mark.parametrize(
    ("command", "schedule", "service"),
    [
        ("archive", "0 * * * *", "archiver"),
        ("compact", "*/15 * * * *", "compactor"),
        ("retention", "30 * * * *", "archiver"),
    ],
)
def test_cronjobs_run_archive_compact_and_retention_without_overlap(
    command: str, schedule: str, service: str
) -> None:
    (job,) = [j for j in of_kind("CronJob") if j["metadata"]["name"] == f"fusou-{command}"]
    spec = job["spec"]
    assert spec["schedule"] == schedule
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    run = spec["jobTemplate"]["spec"]
    assert run["backoffLimit"] >= 1
    (container,) = run["template"]["spec"]["containers"]
    assert container["args"] == [command]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["FUSOU_TARGET"] == f"fusou-{service}:50051"
    # The admin token from the Secret, when there is one (services without tokens run open).
    assert env["FUSOU_TOKEN"] == {
        "secretKeyRef": {"name": "fusou-secrets", "key": "FUSOU_TOKEN", "optional": True}
    }
    assert f"fusou-{service}" in {s["metadata"]["name"] for s in of_kind("Service")}
    if command == "compact":
        # The run's own time bound ends first, so a run is never killed mid-commit.
        assert run["activeDeadlineSeconds"] > Settings().compact.timeout_ms / 1000
    assert run["activeDeadlineSeconds"] < 60 * (15 if command == "compact" else 60)


def test_the_example_overlay_configures_tokens_that_must_be_replaced_to_start() -> None:
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    (secret,) = overlay["secretGenerator"]
    assert "FUSOU_TOKEN" in dict(line.split("=", 1) for line in secret["literals"])
    raw = yaml.safe_load((OVERLAY / "config.yaml").read_text())["data"]["FUSOU_AUTH_TOKENS"]
    # Unedited, the services refuse to start: no public token ever admits anyone.
    with pytest.raises(ConfigError, match="sha256 must be 64 hexadecimal digits"):
        configured_tokens(Settings().replace(auth_tokens=raw))
    # With real hashes in place of the placeholders, the entries are what the README says.
    entries = json.loads(raw)
    for entry in entries:
        entry["sha256"] = hash_token(entry["name"])
    tokens = configured_tokens(Settings().replace(auth_tokens=json.dumps(entries)))
    assert tokens is not None
    roles = {e.name: (set(e.roles), e.all_datasets) for e in tokens.values()}
    assert roles == {
        "gateway": ({Role.INGEST}, True),
        "analytics": ({Role.READ}, True),
        "cronjobs": ({Role.ADMIN}, True),
    }


def test_configuration_names_are_known_variables() -> None:
    keys = set(config_map())
    overlay_config = yaml.safe_load((OVERLAY / "config.yaml").read_text())
    keys |= set(overlay_config["data"])
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    keys |= set(compose["x-fusou"]["environment"])
    assert keys <= KNOWN, keys - KNOWN


# -- Compose ----------------------------------------------------------------------------------


def compose_file() -> Doc:
    # Merge keys (<<) resolved first, as Compose does.
    doc: Doc = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    return doc


def test_the_compose_file_follows_the_compose_specification() -> None:
    parsed = compose_spec.PyCompose.from_json(json.dumps(compose_file()))
    assert set(parsed.service_names()) == {
        "postgres",
        "minio",
        "bucket",
        "migrate",
        *SERVICES,
    }
    broken = compose_file()
    broken["services"]["ingest"]["restrat"] = "always"
    with pytest.raises(ValueError, match="restrat"):
        compose_spec.PyCompose.from_json(json.dumps(broken))


def test_compose_starts_services_after_migrations_and_the_bucket() -> None:
    services = compose_file()["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    host_ports = set()
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["serve", name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert {k: v["condition"] for k, v in service["depends_on"].items()} == {
            "migrate": "service_completed_successfully",
            "bucket": "service_completed_successfully",
        }
        env = service["environment"]
        assert env["FUSOU_OBJECT_STORE_URL"].startswith("s3://")
        assert "@postgres:5432/" in env["FUSOU_DATABASE_URL"]
        port, *others = service["ports"]
        assert port.endswith(":50051")
        if name == "reader":
            assert others == [f"{DEFAULT_FLIGHT_PORT}:{DEFAULT_FLIGHT_PORT}"]
        else:
            assert others == []
        host_ports.add(port.split(":")[0])
    assert len(host_ports) == len(SERVICES)


# -- the image ----------------------------------------------------------------------------------


def test_the_image_runs_fusou_as_a_non_root_user_without_build_tools() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert len(stages) == 2
    build, final = stages
    assert "build-essential" in build and " AS build" in build.splitlines()[0]
    assert "apt-get install" not in final and "build-essential" not in final
    assert "COPY --from=build /opt/fusou /opt/fusou" in final
    (user,) = re.findall(r"^USER (\S+)$", final, flags=re.MULTILINE)
    assert not user.startswith(("0", "root"))
    assert re.search(r'^ENTRYPOINT \["fusou"\]$', final, flags=re.MULTILINE)
    # What the build copies is what .dockerignore lets into the context.
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--)(.+)$", build, flags=re.MULTILINE)
        for source in line.split()[:-1]
    }
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line.removeprefix("!").rstrip("/") for line in ignore if line.startswith("!")}
    assert copied == allowed == {"pyproject.toml", "README.md", "libs", "services"}
