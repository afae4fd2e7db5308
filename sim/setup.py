"""Puts the generated city into the real system through its APIs, as its operator and staff would:
the city and its departments with credentials, the responsibility matrix, each township registered
and its roster workbook imported, and (what-if) the township's own SLA policy."""
from __future__ import annotations

from dataclasses import dataclass, field

from .city import City
from .system import SimSystem, SystemAnswer
from .workbook import department_id, matrix_csv, roster_xlsx
from .spec import SpecError


@dataclass
class Unit:
    id: str
    level: str
    name: str
    township: str
    lead: str | None
    households: list[tuple[str, str]] = field(default_factory=list)   # (id, address)


@dataclass
class Org:
    units: dict[str, Unit]
    township_units: dict[str, str]                  # township code → its unit id
    hoods: dict[str, list[str]]                      # township → staffed neighbourhood unit ids
    departments: dict[str, dict]                     # department id → headers
    imports: dict[str, dict] = field(default_factory=dict)


def install(sim: SimSystem, city: City, policy: dict | None) -> Org:
    departments = _city(sim, city)
    org = Org({}, {}, {}, departments)
    for town in city.townships:
        sim.call("POST", "/api/v1/admin/townships", sim.admin_headers(),
                 json={"code": town.code, "name": town.name, "city": city.code})
        org.imports[town.code] = sim.call("POST", f"/api/v1/townships/{town.code}/roster?filename=roster.xlsx",
                                          sim.admin_headers(), data=roster_xlsx(town))
        if policy is not None:
            apply_policy(sim, town.code, policy)
        _read_org(sim, town.code, org)
        sim.step()
    return org


def apply_policy(sim: SimSystem, township: str, policy: dict) -> None:
    """The township's SLA policy through the real endpoint: its validation names a bad field."""
    try:
        sim.call("PUT", f"/api/v1/townships/{township}/sla-policy", sim.admin_headers(), json=policy)
    except SystemAnswer as exc:
        if exc.status == 422:
            import json

            raise SpecError("policy", json.loads(exc.body).get("errors", {}).get("json", {})) from None
        raise


def _city(sim: SimSystem, city: City) -> dict[str, dict]:
    admin = sim.admin_headers()
    sim.call("PUT", f"/api/v1/cities/{city.code}", admin,
             json={"name": city.name, "supervisor": {"name": "模拟督办", "phone": "19990000000"}})
    headers = {}
    for short, name in city.departments:
        dept = department_id(city, short)
        sim.call("POST", f"/api/v1/cities/{city.code}/departments", admin,
                 json={"id": dept, "name": city.name + name, "sees_phone": False,
                       "contact": {"name": f"{name[:2]}联络员", "phone": "19990000000"}})
        token = sim.call("POST", f"/api/v1/departments/{dept}/credentials", admin, json={"label": "模拟"})["token"]
        headers[dept] = {"Authorization": f"Bearer {token}"}
    sim.call("POST", f"/api/v1/cities/{city.code}/matrix/import?filename=matrix.csv", admin, data=matrix_csv(city))
    return headers


def _read_org(sim: SimSystem, township: str, org: Org) -> None:
    tree = sim.call("GET", f"/api/v1/townships/{township}/org", sim.admin_headers())
    units = tree.get("units", tree) if isinstance(tree, dict) else tree
    org.hoods[township] = []
    for u in units:
        lead = u.get("lead_name")
        unit = Unit(u["id"], u["level"], u["name"], township, lead)
        org.units[unit.id] = unit
        if unit.level == "township":
            org.township_units[township] = unit.id
        if unit.level == "neighbourhood" and lead:
            org.hoods[township].append(unit.id)
            mine = sim.call("GET", "/api/v1/my/households", sim.headers("lead", township, unit.id, lead))
            unit.households = [(h["household_id"], h.get("address")) for h in _items(mine)]


def _items(answer) -> list[dict]:
    if isinstance(answer, dict):
        return answer.get("items") or answer.get("households") or []
    return answer
