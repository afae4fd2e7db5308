"""The HTTP app factory: one Flask app per process, flask-smorest for OpenAPI from the schemas."""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def create_app(runtime) -> Flask:
    app = Flask("sanzhang")
    app.config.update(
        API_TITLE="sanzhang",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=runtime.settings.max_body,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False
    app.extensions["sanzhang.runtime"] = runtime
    app.extensions["sanzhang.auth"] = runtime.authenticator
    api = Api(app, spec_kwargs={
        "info": {"description": "三长制诉求流转系统：受理、派单、升级、市直部门销号与通知。"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    for parts in runtime.parts:
        for bp in parts.blueprints:
            if hasattr(bp, "_docs"):  # a flask-smorest Blueprint
                api.register_blueprint(bp)
            else:
                app.register_blueprint(bp)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", services=[p.name for p in runtime.parts])

    @app.get("/readyz")
    def readyz():
        checks = runtime.readiness()
        ok = all(checks.values())
        return jsonify(status="ready" if ok else "not ready", checks=checks), (200 if ok else 503)

    @app.get("/metrics")
    def metrics():
        from .metrics import render

        body, content_type = render()
        return Response(body, content_type=content_type)

    @app.errorhandler(Exception)
    def unexpected(exc):
        if isinstance(exc, HTTPException):
            return jsonify(code=exc.code, status=exc.name, message=exc.description), exc.code
        log.exception("unhandled error")
        return jsonify(code=500, status="Internal Server Error", message="内部错误，已记录"), 500

    return app
