"""The public address's route table, read from the Compose proxy's nginx.conf and the Kubernetes
Ingress, and every public path of a service (its OpenAPI document and its pages) with sample values:
shared by the table test (tests/e2e/test_ingress_routes.py) and the real-nginx test
(tests/e2e/test_proxy_nginx.py)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared.runtime import Runtime
from shared.web import create_app
from tests.support.runtime import make_settings

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "deploy" / "proxy" / "nginx.conf"
INGRESS = ROOT / "deploy" / "k8s" / "base" / "ingress.yaml"
INTERNAL = {"/healthz", "/readyz", "/metrics", "/static/<path:filename>"}
SHARED_DOC = ("/openapi.json", "dispatch")   # each service has one; the public address shows dispatch's


def nginx_routes() -> list[tuple[str, str]]:
    text = NGINX.read_text(encoding="utf-8")
    return re.findall(r"^\s*location ~ (\S+) \{ proxy_pass http://(\w+); \}", text, flags=re.M)


def ingress_routes() -> list[tuple[str, str]]:
    doc = yaml.safe_load(INGRESS.read_text(encoding="utf-8"))
    assert doc["kind"] == "Ingress" and doc["spec"]["tls"][0]["secretName"]
    assert doc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
    return [(p["path"], p["backend"]["service"]["name"].removeprefix("sanzhang-"))
            for rule in doc["spec"]["rules"] for p in rule["http"]["paths"]]


def sample(path: str) -> str:
    """A concrete path for a rule or an OpenAPI template: each parameter gets a plausible value."""
    path = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m.group(1).strip(), path)
    path = re.sub(r"<path:[^>]+>", "a/b", path)
    return re.sub(r"<(?:[^:>]+:)?[^>]+>|\{[^}]+\}", "430382100", path)


def public_paths(service: str, tmp_path) -> set[str]:
    runtime = Runtime(make_settings(tmp_path / service, pages_townships="430382100=清溪镇"), [service])
    app = create_app(runtime)
    documented = set(app.test_client().get("/openapi.json").json["paths"])
    served = {rule.rule for rule in app.url_map.iter_rules()}
    assert documented, service
    return {p for p in documented | served if p not in INTERNAL}


def routed(path: str, routes) -> list[str]:
    return [service for regex, service in routes if re.search(regex, path)]
