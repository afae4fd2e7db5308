"""The Compose proxy's nginx.conf, run in a real nginx (Debian's package; .ci/run installs it).

tests/e2e/test_ingress_routes.py checks the route table with Python's regular expressions; this
runs the file itself, so nginx's own parser and PCRE decide: the config loads, TLS ends here,
plain http is redirected, the forwarded headers reach the service, a request as large as nine
files passes, the probes are not public, and every public path of every service reaches that
service. Only what a test machine needs is rewritten: the upstreams' addresses (four small echo
servers, then the embedded system), the ports, the certificate's folder, the pid and temp paths,
and `http2 on;` where this nginx is older than 1.25.1, which introduced the directive (the Compose
image is 1.27)."""
from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.serving import make_server

from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.runtime import make_settings
from tests.support.routes import INTERNAL, NGINX, SHARED_DOC, public_paths, sample

NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Echo(BaseHTTPRequestHandler):
    """An upstream that says which service it is and what the proxy told it."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = "|".join([self.server.name, self.path, self.headers.get("X-Forwarded-Proto", ""),
                         self.headers.get("Host", ""), str(length)]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


def serve(server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run([NGINX_BIN, "-v"], capture_output=True, text=True).stderr
    return tuple(int(x) for x in re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out).groups())


def site_config(tmp, upstreams: dict[str, int], http_port: int, https_port: int) -> str:
    text = NGINX.read_text(encoding="utf-8")
    for service, port in upstreams.items():
        text = text.replace(f"server {service}:8000;", f"server 127.0.0.1:{port};")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("listen 8443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    text = text.replace(" /tmp/", f" {tmp}/run/").replace("/etc/nginx/tls/", f"{tmp}/tls/")
    if nginx_version() < (1, 25, 1):
        text = text.replace("http2 on;", "")
    assert "server intake:8000" not in text and f"127.0.0.1:{https_port} ssl" in text
    return text


class Proxy:
    """nginx running nginx.conf in the foreground, its upstreams at the given local ports."""

    def __init__(self, tmp, upstreams: dict[str, int]):
        if not Path(NGINX_BIN).exists():
            pytest.fail("nginx is not installed (apt-get install nginx; .ci/run installs it)")
        (tmp / "tls").mkdir(parents=True)
        (tmp / "run").mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", str(tmp / "tls" / "tls.key"),
                        "-out", str(tmp / "tls" / "tls.crt")], check=True, capture_output=True)
        self.http, self.https = free_port(), free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(site_config(tmp, upstreams, self.http, self.https), encoding="utf-8")
        self.log = tmp / "error.log"
        checked = subprocess.run([NGINX_BIN, "-t", "-q", "-c", str(conf), "-p", str(tmp), "-e", str(self.log)],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        # `user root`: the workers must reach the test's private temp folder (ignored when not root).
        self.proc = subprocess.Popen([NGINX_BIN, "-c", str(conf), "-p", str(tmp), "-e", str(self.log),
                                      "-g", "daemon off; user root;"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.https), timeout=0.5).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read().decode()
                time.sleep(0.1)
        pytest.fail("nginx did not start listening in 20 s")

    def get(self, path: str, method: str = "GET", data: bytes | None = None, https: bool = True):
        url = (f"https://localhost:{self.https}" if https else f"http://127.0.0.1:{self.http}") + path
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect())
        request = urllib.request.Request(url, data=data, method=method)
        try:
            with opener.open(request, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def echoes():
    servers = {}
    for service in SERVICES:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        server.name = service
        serve(server)
        servers[service] = server
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(tmp_path, echoes):
    running = Proxy(tmp_path / "nginx", {s: srv.server_address[1] for s, srv in echoes.items()})
    yield running
    running.stop()


def test_every_public_path_reaches_its_service_through_real_nginx(proxy, tmp_path):
    wrong = {}
    for service in SERVICES:
        for path in sorted(public_paths(service, tmp_path / service)):
            expected = SHARED_DOC[1] if path == SHARED_DOC[0] else service
            status, _, body = proxy.get(sample(path))
            answered = body.decode(errors="replace").split("|")[0] if status == 200 else f"HTTP {status}"
            if answered != expected:
                wrong[f"{path} ({sample(path)})"] = f"{answered}, expected {expected}"
    assert not wrong, f"paths nginx sent elsewhere or nowhere: {wrong}"


def test_tls_redirect_forwarded_headers_and_large_bodies(proxy):
    status, headers, _ = proxy.get("/resident/430382100/report?x=1", https=False)
    assert status == 308 and headers["Location"] == "https://127.0.0.1/resident/430382100/report?x=1"
    status, headers, body = proxy.get("/lead/")
    service, path, proto, host, _ = body.decode().split("|")
    assert (status, service, path, proto) == (200, "dispatch", "/lead/", "https")
    assert host == f"localhost:{proxy.https}" or host == "localhost"
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    nine_files = b"x" * (90 * 1024 * 1024)
    status, _, body = proxy.get("/api/v1/department/cases/C1/files", method="POST", data=nine_files)
    assert status == 200 and body.decode().split("|")[0] == "escalation" and body.decode().endswith(str(len(nine_files)))
    status, _, _ = proxy.get("/api/v1/reports/R1/photos", method="POST", data=b"x" * (101 * 1024 * 1024))
    assert status == 413


def test_probes_and_metrics_are_not_public(proxy):
    for path in sorted(INTERNAL - {"/static/<path:filename>"}) + ["/static/kit.css", "/nothing/here"]:
        status, _, body = proxy.get(path)
        assert status == 404 and b"|" not in body, path


def test_the_system_behind_real_nginx_serves_pages_over_https(tmp_path, clock):
    """The embedded system (all four services in one process) as every upstream: the entry page and
    a resident's report page arrive through TLS, and with SANZHANG_TRUSTED_PROXIES=1 the service
    knows the request came over https (its session cookie is Secure)."""
    settings = make_settings(tmp_path / "system", pages_townships="430382100=清溪镇",
                             extra={"SANZHANG_TRUSTED_PROXIES": "1"})
    runtime = Runtime(settings, SERVICES, clock=clock).start()
    srv = make_server("127.0.0.1", 0, create_app(runtime), threaded=True)
    serve(srv)
    proxy = Proxy(tmp_path / "nginx", {s: srv.server_port for s in SERVICES})
    try:
        status, headers, body = proxy.get("/")
        assert status == 200 and "您是" in body.decode()
        status, headers, body = proxy.get("/resident/430382100/report")
        assert status == 200 and "反映问题" in body.decode()
        submission = re.search(r'name="submission" value="([^"]+)"', body.decode()).group(1)
        form = urllib.parse.urlencode({"submission": submission, "category": "environment", "description": "门口垃圾三天没人清运",
                                       "address": "韶山村一组12号", "phone": "13973200009"}).encode()
        status, headers, body = proxy.get("/resident/430382100/report", method="POST", data=form)
        assert status == 303, re.findall(r'id="[a-z]+-error"[^>]*>([^<]*)', body.decode())
        assert re.match(r"^/resident/430382100/track/\w+$", headers["Location"]), headers["Location"]
        cookies = headers.get_all("Set-Cookie")
        assert cookies and all("Secure" in c and "HttpOnly" in c for c in cookies), cookies
        status, _, body = proxy.get("/resident/kit/kit.css")
        assert status == 200 and len(body) > 100
    finally:
        proxy.stop()
        srv.shutdown()
        runtime.stop()
