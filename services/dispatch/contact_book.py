"""The township admin's contact book: village committees' and township staff's contacts, imported
from a file or kept one by one, and which posts nobody can be reached at.

Every change re-publishes the township's directory (``org.contacts_changed``, with ``posts``), so
notify reaches the new people from the next message on.
"""
from __future__ import annotations

from shared.domain.ids import new_id, township_unit_id
from shared.domain.reachability import routes_for, unreachable_posts

from .contacts import ContactsError, PostContact, check_contact, contact_id, parse_contacts, village_units
from .org import OrgRepository, contact_doc


class ContactConflict(Exception):
    """The same person is already a contact of that post."""


class ContactBook:
    def __init__(self, org: OrgRepository, routes_json: str | None = None):
        self.org = org
        self.routes_json = routes_json

    # -- reading --------------------------------------------------------------------------------
    def list(self, township: str) -> list[dict]:
        docs = self.org.post_contacts.find({"township": township})
        return sorted(docs, key=lambda c: (c["level"] != "township", c["unit_name"], c["precedence"], c["name"]))

    def reachability(self, township: str) -> list[dict]:
        """Posts that can hold a case and where nobody is reachable by the configured channels."""
        return unreachable_posts(self.org.posts(township), routes_for(self.routes_json, township))

    # -- writing --------------------------------------------------------------------------------
    def import_file(self, township: str, data: bytes, filename: str, actor: str) -> dict:
        """The whole file is checked first; a good one replaces the township's contacts."""
        contacts = parse_contacts(data, filename, township, self._villages(township), self._township_name(township))
        count = self.org.replace_post_contacts(township, contacts)
        self.org.publish_contacts(township, actor, {"contacts": count})
        return {"township": township, "counts": {"contacts": count}, "unreachable": self.reachability(township)}

    def add(self, township: str, body: dict, actor: str) -> dict:
        contact = self._checked(township, body)
        self._refuse_twin(contact, None)
        # The id an import would give, unless a renamed contact holds it: ids only need to be unique.
        doc_id = contact.id if self.org.post_contacts.get(contact.id) is None else "c-" + new_id()[:16]
        self.org.post_contacts.upsert({**contact_doc(contact), "_id": doc_id})
        self.org.publish_contacts(township, actor, {"contact_added": doc_id})
        return self.org.post_contacts.get(doc_id)

    def update(self, township: str, contact_id_: str, body: dict, actor: str) -> dict:
        current = self._own(township, contact_id_)
        # A PUT without an order of precedence keeps the contact's place.
        contact = self._checked(township, {**body, "precedence": body.get("precedence") or current["precedence"]})
        self._refuse_twin(contact, current["_id"])
        self.org.post_contacts.upsert({**contact_doc(contact), "_id": current["_id"]})
        self.org.publish_contacts(township, actor, {"contact_updated": current["_id"]})
        return self.org.post_contacts.get(current["_id"])

    def delete(self, township: str, contact_id_: str, actor: str) -> None:
        current = self._own(township, contact_id_)
        self.org.post_contacts.delete(current["_id"])
        self.org.publish_contacts(township, actor, {"contact_deleted": current["_id"]})

    # -- helpers --------------------------------------------------------------------------------
    def _refuse_twin(self, contact: PostContact, own_id: str | None) -> None:
        """One person once per post: the same name at the same village (or among the staff) is a conflict."""
        for other in self.org.post_contacts.find({"unit_id": contact.unit_id}):
            if other["name"] == contact.name and other["_id"] != own_id:
                raise ContactConflict(other["_id"])

    def _own(self, township: str, contact_id_: str) -> dict:
        current = self.org.post_contacts.get(contact_id_)
        if current is None or current["township"] != township:
            raise LookupError(contact_id_)
        return current

    def _checked(self, township: str, body: dict) -> PostContact:
        checked, problems = check_contact(body, self._villages(township))
        if checked is None:
            raise ContactsError([{"row": None, "column": column, "message": message} for column, message in problems])
        unit = self._villages(township)[checked["village"]] if checked["village"] else township_unit_id(township)
        precedence = checked["precedence"] or 1 + max(
            (c["precedence"] for c in self.org.post_contacts.find({"unit_id": unit})), default=0)
        return PostContact(contact_id(township, unit, checked["name"]), township, unit,
                           "village" if checked["village"] else "township",
                           checked["village"] or self._township_name(township), checked["name"],
                           checked["duty"] or "值班", checked["phone"], checked["wecom_id"], precedence)

    def _villages(self, township: str) -> dict[str, str]:
        names = [u["name"] for u in self.org.units.find({"township": township, "level": "village"})]
        return village_units(township, names)

    def _township_name(self, township: str) -> str:
        return (self.org.township(township) or {}).get("name") or township
