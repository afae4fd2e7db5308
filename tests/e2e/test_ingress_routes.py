"""The one public address routes every public path to the service that serves it.

The routes live twice, as the Compose proxy's nginx locations (deploy/proxy/nginx.conf) and as the
Kubernetes Ingress's regex paths (deploy/k8s/base/ingress.yaml, written from the proxy's by
tools/gen_ingress.py); the two must be the same table. Each service is built alone (as it runs in
a deployment) and asked for its OpenAPI document and its URL map (the pages): every path of both,
with sample values in its parameters, must match exactly one route — its own service's — so the routes' order never matters. The probes and
metrics match none (they are not public)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shared.runtime import SERVICES, Runtime
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


def test_the_proxy_and_the_ingress_carry_the_same_routes():
    assert nginx_routes(), "no routes found in nginx.conf"
    assert nginx_routes() == ingress_routes()
    assert {s for _, s in nginx_routes()} == set(SERVICES)


def test_the_proxy_terminates_tls_and_redirects_plain_http():
    text = NGINX.read_text(encoding="utf-8")
    assert re.search(r"listen 8443 ssl;", text) and "ssl_certificate " in text
    assert "return 308 https://$host$request_uri;" in text
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8"))["services"]
    assert [p.rsplit(":", 2)[1:] for p in compose["proxy"]["ports"]] == [["443", "8443"], ["80", "8080"]]
    assert all("ports" not in compose[s] for s in SERVICES), "only the proxy is published"


@pytest.mark.parametrize("service", SERVICES)
def test_every_public_path_reaches_its_service(service, tmp_path):
    paths = public_paths(service, tmp_path)
    wrong = {}
    for path in sorted(paths):
        expected = [SHARED_DOC[1]] if path == SHARED_DOC[0] else [service]
        for name, routes in (("proxy", nginx_routes()), ("ingress", ingress_routes())):
            got = routed(sample(path), routes)
            if got != expected:
                wrong[f"{name} {path} ({sample(path)})"] = got
    assert not wrong, f"{service}: paths routed elsewhere, nowhere or twice: {wrong}"
    if service == "intake":
        assert {"/resident/<string:township>/report", "/api/v1/reports"} <= paths
    if service == "dispatch":
        assert {"/", "/board/<string:code>"} <= paths


def test_internal_paths_are_not_public():
    for path in ("/healthz", "/readyz", "/metrics", "/static/x.css", "/nothing/here"):
        assert routed(path, nginx_routes()) == [] and routed(path, ingress_routes()) == []
