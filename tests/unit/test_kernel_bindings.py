"""Queue bindings come from what each service declares it handles (its bootstrap's HANDLES), and
the runtime refuses a handler map that differs, so an event a service handles is never unbound."""
from __future__ import annotations

import importlib

import pytest

from shared.events import PAYLOADS
from shared.runtime import SERVICES, bindings, check_handlers
from shared.service import ServiceParts


def test_bindings_are_each_services_declared_handlers():
    for name, keys in bindings().items():
        assert set(keys) == importlib.import_module(f"services.{name}.bootstrap").HANDLES
        assert all("*" not in k and "#" not in k for k in keys)  # exact types: no wildcard binds extra


def test_every_bound_event_has_a_payload_schema():
    bound = {k for keys in bindings().values() for k in keys}
    assert bound - set(PAYLOADS) == set()


def test_every_event_with_a_schema_is_bound_somewhere():
    # Publishing is mandatory: an event type nobody binds would be refused at publish time.
    bound = {k for keys in bindings().values() for k in keys}
    assert set(PAYLOADS) - bound == set()


def test_every_service_has_a_queue():
    assert set(bindings()) == set(SERVICES)


def test_a_handler_map_that_differs_from_its_declaration_is_refused():
    def handle(event):
        return None

    parts = ServiceParts(name="intake", handlers={"case.assigned": handle, "sla.breached": handle})
    with pytest.raises(RuntimeError, match=r"handled but not declared \['sla.breached'\]"):
        check_handlers(parts, frozenset({"case.assigned"}))
    with pytest.raises(RuntimeError, match=r"declared but not handled \['case.accepted'\]"):
        check_handlers(ServiceParts(name="intake", handlers={"case.assigned": handle}),
                       frozenset({"case.assigned", "case.accepted"}))
    check_handlers(ServiceParts(name="intake", handlers={"case.assigned": handle}), frozenset({"case.assigned"}))
    # A retired type (bound by an earlier version, no longer declared) may be handled, nothing else.
    check_handlers(ServiceParts(name="dispatch", handlers={"case.assigned": handle, "sla.breached": handle},
                                retired=frozenset({"case.assigned"})), frozenset({"sla.breached"}))


def test_the_built_services_handle_exactly_what_they_declare(tmp_path):
    # Building (no start: no threads, no broker) runs the same check the runtime runs on every boot.
    from shared.config import Settings
    from shared.runtime import Runtime

    runtime = Runtime(Settings(data_dir=tmp_path, secret="k" * 32), consume=False)
    try:
        for parts in runtime.parts:
            assert set(parts.handlers) - parts.retired == set(bindings()[parts.name])
            assert not parts.retired & set(bindings()[parts.name])   # retired: handled, never bound anew
    finally:
        for store in runtime.stores.values():
            store.close()
