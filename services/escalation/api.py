"""escalation's HTTP edge: departments and the matrix (admin), the sign-off API (departments), and
the township's decisions on referred cases (staff). Decode, validate, call the service, map errors.

Who may do what:

- operator: everything.
- city staff: a ``staff`` token whose ``scopes`` include ``city`` and whose townships lie in the city
  (code starts with the 6-digit city code) manages that city's departments, credentials, webhooks and
  matrix. Township staff of the city may read the departments and the matrix (to choose a lead);
  staff of other cities get 404.
- department: a department credential (``Bearer <key_id>.<secret>``) or a signed token with role
  ``department``; sees and acts only on cases it has a part in (anything else is 404).
- township staff: decide extensions, re-route a returned case, rule on a return — for their townships.

Errors are JSON ``{"code", "status", "message"}``; a 409 adds ``error_code`` (machine-readable), a
422 ``errors`` naming the field.

One module per audience: ``city_admin_api`` (operator and city staff), ``department_api`` (the
departments), ``township_api`` (township staff); what they share is in ``api_support``.
"""
from __future__ import annotations

from flask_smorest import Blueprint

from .city_admin_api import build_city_admin_blueprint
from .department_api import build_department_blueprint
from .service import EscalationService
from .township_api import build_township_blueprint


def build_blueprints(service: EscalationService) -> list[Blueprint]:
    return [build_city_admin_blueprint(service), build_department_blueprint(service), build_township_blueprint(service)]
