"""The one public address routes every public path to the service that serves it.

The routes live twice, as the Compose proxy's nginx locations (deploy/proxy/nginx.conf) and as the
Kubernetes Ingress's regex paths (deploy/k8s/base/ingress.yaml, written from the proxy's by
tools/gen_ingress.py); the two must be the same table. Each service is built alone (as it runs in
a deployment) and asked for its OpenAPI document and its URL map (the pages): every path of both,
with sample values in its parameters, must match exactly one route — its own service's — so the routes' order never matters. The probes and
metrics match none (they are not public)."""
from __future__ import annotations

import re

import pytest
import yaml

from shared.runtime import SERVICES
from tests.support.routes import (INTERNAL, NGINX, ROOT, SHARED_DOC, ingress_routes, nginx_routes,
                                  public_paths, routed, sample)


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
