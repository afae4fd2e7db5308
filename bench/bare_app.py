"""The web stack's own ceiling: Flask + the same marshmallow schema, validating and nothing else."""
from __future__ import annotations

from flask import Flask, jsonify, request
from marshmallow import ValidationError

from services.intake.schemas import ReportIn


def create_app() -> Flask:
    app = Flask("bare")
    schema = ReportIn()

    @app.post("/api/v1/reports")
    def submit():
        try:
            body = schema.load(request.get_json())
        except ValidationError as exc:
            return jsonify(errors=exc.messages), 422
        return jsonify(id="x", township=body["township"]), 201

    return app


app = create_app()
