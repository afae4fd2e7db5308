"""People's accounts: who may sign in with a code, and as what.

Kinds and who manages them:

- ``township_admin`` — created by the operator; manages the township's staff.
- ``staff`` — a township's staff, created by its administrator (or the operator).
- ``city_admin`` — created by the operator; manages its city's departments' clerks.
- ``department`` — a department's clerk, created by its city's administrator (or the operator).

Leads are not accounts: they come from the roster, and sign in with the phone on their post.
Departments' systems and client apps keep their machine credentials.
"""
from __future__ import annotations

from shared.auth import Principal
from shared.clock import Clock, iso
from shared.domain import phones
from shared.domain.ids import new_id
from shared.domain.signin_codes import phone_key
from shared.storage import DuplicateKey, Index, Store, VersionConflict

KINDS = ("township_admin", "staff", "city_admin", "department")


class NotAllowed(Exception):
    """The caller may not manage this kind of account here (403), with the reason in Chinese."""


class Invisible(Exception):
    """Not the caller's to see (404: nothing tells it the account exists)."""


class Conflict(Exception):
    pass


def city_of(principal: Principal) -> str | None:
    """A city administrator's city (its credential's townships name the 6-digit city code)."""
    if principal.role == "staff" and "city" in principal.scopes and principal.townships:
        return principal.townships[0][:6]
    return None


def is_township_admin(principal: Principal) -> bool:
    return principal.role == "staff" and "township_admin" in principal.scopes


class Accounts:
    def __init__(self, store: Store, clock: Clock, secret: str):
        self.clock = clock
        self.secret = secret
        self.accounts = store.collection("accounts", [Index.on("township"), Index.on("city"),
                                                       Index.on("phone_key", unique=True), Index.on("wecom_id")])

    # -- who may do what ------------------------------------------------------------------------
    def check_may_create(self, actor: Principal, body: dict) -> None:
        kind = body["kind"]
        if actor.role == "operator":
            return
        if kind == "staff" and is_township_admin(actor):
            if body.get("township") not in actor.townships:
                raise Invisible()
            return
        if kind == "department" and city_of(actor):
            if not (body.get("department_id") or "").startswith(city_of(actor) + "-"):
                raise NotAllowed("只能为本市的部门添加经办人（部门编号以本市代码开头）")
            return
        raise NotAllowed({"township_admin": "镇(街道)管理员由运维添加", "city_admin": "市级管理员由运维添加",
                          "staff": "只有本镇(街道)管理员可以添加工作人员",
                          "department": "只有市级管理员可以添加部门经办人"}[kind])

    def visible(self, actor: Principal, account: dict | None) -> bool:
        if account is None:
            return False
        if actor.role == "operator":
            return True
        if is_township_admin(actor):
            return account["kind"] == "staff" and account.get("township") in actor.townships
        city = city_of(actor)
        return bool(city) and account["kind"] == "department" and account.get("city") == city

    # -- the use cases --------------------------------------------------------------------------
    def create(self, actor: Principal, body: dict) -> dict:
        self.check_may_create(actor, body)
        phone = phones.mobile(body["phone"])
        township = body.get("township")
        city = body.get("city") or (township[:6] if township else (body.get("department_id") or "")[:6])
        doc = {"_id": "acc-" + new_id()[:20], "kind": body["kind"], "name": body["name"], "phone": phone,
               "phone_key": phone_key(self.secret, phone), "wecom_id": body.get("wecom_id"), "title": body.get("title"),
               "township": township, "city": city, "department_id": body.get("department_id"),
               "created_at": iso(self.clock.now()), "created_by": actor.name or actor.role}
        try:
            return self.accounts.insert(doc)
        except DuplicateKey:
            raise Conflict("该手机号已有账号：一个手机号只能登记一个账号") from None

    def listed(self, actor: Principal, township: str | None, city: str | None) -> list[dict]:
        if township:
            found = self.accounts.find({"township": township}, limit=1000)
        elif city:
            found = self.accounts.find({"city": city}, limit=1000)
        else:
            found = []
        return sorted((a for a in found if self.visible(actor, a)), key=lambda a: a["created_at"])

    def get_visible(self, actor: Principal, account_id: str) -> dict:
        account = self.accounts.get(account_id)
        if not self.visible(actor, account):
            raise Invisible()
        return account

    def change(self, actor: Principal, account_id: str, changes: dict) -> tuple[dict, bool]:
        """(the account, whether its sessions must end: a new phone is a new person to sign in)."""
        account = self.get_visible(actor, account_id)
        new = {**account, **changes}
        if "phone" in changes:
            new["phone"] = phones.mobile(changes["phone"])
            new["phone_key"] = phone_key(self.secret, new["phone"])
        if new.get("phone_key") != account["phone_key"] and self.by_phone_key(new["phone_key"]):
            raise Conflict("该手机号已有账号：一个手机号只能登记一个账号")
        try:
            stored = self.accounts.replace(new, account["version"])
        except DuplicateKey:
            raise Conflict("该手机号已有账号：一个手机号只能登记一个账号") from None
        except VersionConflict:
            raise Conflict("账号刚被他人修改，请刷新后重试") from None
        return stored, new["phone_key"] != account["phone_key"]

    def remove(self, actor: Principal, account_id: str) -> dict:
        account = self.get_visible(actor, account_id)
        self.accounts.delete(account_id)
        return account

    def by_wecom_id(self, township: str, userid: str) -> dict | None:
        found = [a for a in self.accounts.find({"wecom_id": userid}, limit=50) if a.get("township") == township]
        return found[0] if found else None

    def by_phone_key(self, key: str) -> dict | None:
        found = self.accounts.find({"phone_key": key}, limit=1)
        return found[0] if found else None


def principal_for(account: dict) -> Principal:
    """What a signed-in account may do, as the rest of the system reads a credential."""
    kind, name = account["kind"], account.get("name")
    if kind == "township_admin":
        return Principal(role="staff", townships=(account["township"],), name=name, scopes=("township_admin",))
    if kind == "staff":
        return Principal(role="staff", townships=(account["township"],), name=name)
    if kind == "city_admin":
        return Principal(role="staff", townships=(account["city"],), name=name, scopes=("city",))
    return Principal(role="department", department_id=account["department_id"], name=name)
