"""积分超市: a township's catalogue of rewards, and leads spending their points on them (积分兑换).

Points are earned in the ledger (ledger.py); an exchange spends them. Documents:

- ``rewards``: a township's catalogue item — name, price in points, stock, active. Managed by
  township staff.
- ``wallets``: one per lead (``lead_key``), holding ``spent`` — what the lead's exchanges cost, less
  what staff reversed. Every debit is a compare-and-set on this document after checking
  ``earned - spent >= cost`` on the version it read, so two exchanges racing for the last points
  cannot both pass: the balance never goes negative by an exchange. (A penalty in the ledger may
  still take a lead below zero; they then cannot exchange until they earn again.)
- ``exchanges``: one per exchange, its id derived from the township and the caller's exchange key,
  so a resent request returns the first exchange instead of spending twice.

An exchange is also a ledger entry (rule ``exchange``, negative points; a reversal is rule
``exchange_reversal``, crediting them back), so the ledger stays the lead's full history and their
balance is the sum of their entries. Quarterly standings and cards leave both rules out (cards.py):
spending points is not a bad mark.

Order of writes, each idempotent by the exchange key (the wallet and the item remember the last keys
they applied), so a retry after a crash completes what is missing without charging twice: debit the
wallet, take the stock (refunding the wallet if the item ran out), then record the exchange and its
ledger entry.
"""
from __future__ import annotations

from datetime import datetime

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso
from shared.domain.ids import derived_id, new_id
from shared.domain.levels import LEAD_LEVELS
from shared.storage import DuplicateKey, Index, Store

from .facts import lead_key, quarter_of, week_of
from .ledger import Ledger

SPENDING_RULES = ("exchange", "exchange_reversal")   # in the ledger, but not in standings or cards
KEEP_KEYS = 200                                       # exchange keys a wallet or an item remembers


class ExchangeError(Exception):
    """Refused: ``status`` 404/409/422, ``field`` named for a 422."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _remember(doc: dict, key: str) -> None:
    doc["keys"] = (doc.get("keys", []) + [key])[-KEEP_KEYS:]


class Exchanges:
    def __init__(self, store: Store, ledger: Ledger, org, clock: Clock):
        self.rewards = Aggregates(store.collection("rewards", [Index.on("township", "name")]), clock)
        self.wallets = Aggregates(store.collection("wallets", [Index.on("township")]), clock)
        self.exchanges = Aggregates(store.collection("exchanges", [
            Index.on("township", "at"), Index.on("township", "lead_key", "at"),
            Index.on("township", "unit_id", "at")]), clock)
        self.ledger = ledger
        self.org = org
        self.clock = clock

    # -- the catalogue ------------------------------------------------------------------------------
    def catalogue(self, township: str, active_only: bool = False) -> list[dict]:
        items = self.rewards.collection.find({"township": township}, sort=[("name", 1)], limit=1000)
        return [i for i in items if i["active"] or not active_only]

    def add_reward(self, township: str, body: dict, actor: str) -> dict:
        if self.rewards.collection.find({"township": township, "name": body["name"]}, limit=1):
            raise ExchangeError(409, "积分超市已有同名商品")
        now = iso(self.clock.now())
        item = {"_id": new_id()[:16], "township": township, "name": body["name"], "price": body["price"],
                "stock": body["stock"], "active": body.get("active", True), "description": body.get("description"),
                "created_at": now, "updated_at": now, "changed_by": actor, "keys": []}
        return self.rewards.add(item)

    def change_reward(self, township: str, item_id: str, body: dict, actor: str) -> dict:
        self.reward(township, item_id)
        if body.get("name") and any(i["_id"] != item_id for i in self.rewards.collection.find(
                {"township": township, "name": body["name"]}, limit=2)):
            raise ExchangeError(409, "积分超市已有同名商品")

        def change(item: dict):
            if not body:
                raise Unchanged  # nothing to change: the item as it is
            item.update(body, updated_at=iso(self.clock.now()), changed_by=actor)
            return ()
        return self.rewards.mutate(item_id, change)

    def reward(self, township: str, item_id: str) -> dict:
        item = self.rewards.get(item_id)
        if item is None or item["township"] != township:
            raise ExchangeError(404, "未找到该商品")
        return item

    # -- balances -----------------------------------------------------------------------------------
    def lead_of_unit(self, township: str, unit_id: str) -> dict:
        """The lead in post at a 三长 unit, as the ledger names them."""
        unit = self.org.unit(unit_id)
        if unit is None or unit["township"] != township:
            raise ExchangeError(422, "本镇(街道)没有这个岗位", field="unit_id")
        name = (unit.get("lead") or {}).get("name")
        if unit["level"] not in LEAD_LEVELS or not name:
            raise ExchangeError(422, "该岗位不是在岗的三长，没有积分", field="unit_id")
        return {"lead_key": lead_key(unit["level"], unit["_id"], name), "unit_id": unit["_id"],
                "unit_name": unit["name"], "lead_name": name, "level": unit["level"]}

    def earned(self, township: str, key: str) -> float:
        entries = self.ledger.list(township, lead=key, limit=100_000)
        return round(sum(e["points"] for e in entries if e["rule"] not in SPENDING_RULES), 2)

    def balance(self, township: str, key: str) -> dict:
        wallet = self.wallets.get(f"{township}:{key}") or {}
        earned, spent = self.earned(township, key), round(wallet.get("spent", 0), 2)
        return {"lead_key": key, "earned": earned, "spent": spent, "balance": round(earned - spent, 2)}

    def history(self, township: str, *, key: str | None = None, unit_id: str | None = None,
                since: str | None = None, until: str | None = None, limit: int = 200) -> list[dict]:
        where: dict = {"township": township}
        if key:
            where["lead_key"] = key
        if unit_id:
            where["unit_id"] = unit_id
        if since or until:
            where["at"] = {k: v for k, v in (("$gte", since), ("$lt", until)) if v}
        return [_public(e) for e in self.exchanges.collection.find(where, sort=[("at", -1)], limit=limit)]

    def period_totals(self, township: str, since: str, until: str) -> dict:
        done = [e for e in self.exchanges.collection.find(
            {"township": township, "at": {"$gte": since, "$lt": until}}, limit=100_000) if e["status"] == "done"]
        return {"count": len(done), "points": round(sum(e["points"] for e in done), 2),
                "items": sum(e["quantity"] for e in done)}

    # -- exchanging ---------------------------------------------------------------------------------
    def exchange(self, township: str, lead: dict, item_id: str, quantity: int, key: str, actor: str,
                 note: str | None = None) -> tuple[dict, bool]:
        """(the exchange, whether it is new). The same key again returns the first exchange."""
        exchange_id = derived_id("exchange", township, key)
        existing = self.exchanges.get(exchange_id)
        if existing is not None:
            if existing["lead_key"] != lead["lead_key"] or existing["item_id"] != item_id:
                raise ExchangeError(409, "该兑换编号已用于另一笔兑换")
            return _public(existing), False
        item = self.reward(township, item_id)
        if not item["active"]:
            raise ExchangeError(409, f"“{item['name']}”已下架")
        cost = item["price"] * quantity
        if key not in item.get("keys", []) and item["stock"] < quantity:
            raise ExchangeError(409, f"“{item['name']}”库存不足：剩余 {item['stock']}，需要 {quantity}")
        self._debit(township, lead["lead_key"], key, cost)
        self._take_stock(township, lead["lead_key"], item, key, quantity, cost)
        now = self.clock.now()
        record = {"_id": exchange_id, "township": township, "key": key, "item_id": item_id, "item_name": item["name"],
                  "price": item["price"], "quantity": quantity, "points": cost, "status": "done", "at": iso(now),
                  "by": actor, "note": note, "reversed_at": None, "reversed_by": None, "reason": None,
                  **{k: lead[k] for k in ("lead_key", "unit_id", "unit_name", "lead_name", "level")}}
        try:
            stored = self.exchanges.add(record)
        except DuplicateKey:
            return _public(self.exchanges.get(exchange_id)), False
        self._ledger_entry(stored, "exchange", -cost, f"积分兑换：{item['name']}×{quantity}", now)
        return _public(stored), True

    def _debit(self, township: str, key: str, exchange_key: str, cost: float) -> None:
        wallet_id = f"{township}:{key}"
        if self.wallets.get(wallet_id) is None:
            try:
                self.wallets.add({"_id": wallet_id, "township": township, "lead_key": key, "spent": 0.0, "keys": []})
            except DuplicateKey:
                pass
        earned = self.earned(township, key)

        def debit(wallet: dict):
            if exchange_key in wallet.get("keys", []):
                raise Unchanged  # a retry: already charged
            left = round(earned - wallet["spent"], 2)
            if left < cost:
                raise ExchangeError(409, f"积分不足：余额 {_num(left)}，需要 {_num(cost)}")
            wallet["spent"] = round(wallet["spent"] + cost, 2)
            _remember(wallet, exchange_key)
            return ()
        self.wallets.mutate(wallet_id, debit)

    def _take_stock(self, township: str, key: str, item: dict, exchange_key: str, quantity: int, cost: float) -> None:
        def take(doc: dict):
            if exchange_key in doc.get("keys", []):
                raise Unchanged
            if doc["stock"] < quantity or not doc["active"]:
                raise ExchangeError(409, f"“{doc['name']}”库存不足：剩余 {doc['stock']}，需要 {quantity}")
            doc["stock"] -= quantity
            _remember(doc, exchange_key)
            return ()
        try:
            self.rewards.mutate(item["_id"], take)
        except ExchangeError:
            self._refund(township, key, exchange_key, cost, None)
            raise

    def _refund(self, township: str, key: str, exchange_key: str, cost: float, prefix: str | None) -> None:
        """Credits ``cost`` back once: for a reversal (``prefix`` remembered), or undoing a charge whose
        stock ran out (``prefix`` None: the key is forgotten, so a retry is charged afresh)."""
        def refund(wallet: dict):
            keys = wallet.get("keys", [])
            if (prefix is None and exchange_key not in keys) or (prefix and prefix + exchange_key in keys):
                raise Unchanged
            wallet["spent"] = round(wallet["spent"] - cost, 2)
            if prefix is None:
                wallet["keys"] = [k for k in keys if k != exchange_key]
            else:
                _remember(wallet, prefix + exchange_key)
            return ()
        self.wallets.mutate(f"{township}:{key}", refund)

    # -- reversing ----------------------------------------------------------------------------------
    def reverse(self, township: str, exchange_id: str, reason: str, actor: str) -> dict:
        """Staff undo an exchange: the points come back, the stock goes back; recorded with the reason."""
        found = self.exchanges.get(exchange_id)
        if found is None or found["township"] != township:
            raise ExchangeError(404, "未找到该兑换记录")
        now = self.clock.now()

        def mark(doc: dict):
            if doc["status"] == "reversed":
                raise ExchangeError(409, "该兑换已撤销")
            doc.update(status="reversed", reversed_at=iso(now), reversed_by=actor, reason=reason)
            return ()
        stored = self.exchanges.mutate(exchange_id, mark)
        self._refund(township, stored["lead_key"], stored["key"], stored["points"], "reversed:")
        self._give_back(stored)
        self._ledger_entry(stored, "exchange_reversal", stored["points"],
                           f"撤销积分兑换：{stored['item_name']}×{stored['quantity']}（{reason}）", now)
        return _public(stored)

    def _give_back(self, exchange: dict) -> None:
        def give(doc: dict):
            if "reversed:" + exchange["key"] in doc.get("keys", []):
                raise Unchanged
            doc["stock"] += exchange["quantity"]
            _remember(doc, "reversed:" + exchange["key"])
            return ()
        try:
            self.rewards.mutate(exchange["item_id"], give)
        except NotFound:
            pass  # an item cannot be deleted today; nothing to give back to if it were

    def _ledger_entry(self, exchange: dict, rule: str, points: float, name: str, now: datetime) -> None:
        at = iso(now)
        entry = {"_id": derived_id("ledger", exchange["_id"], rule), "township": exchange["township"], "rule": rule,
                 "rule_name": name, "points": points, "lead_key": exchange["lead_key"],
                 "unit_id": exchange["unit_id"], "unit_name": exchange["unit_name"],
                 "lead_name": exchange["lead_name"], "level": exchange["level"], "case_id": None,
                 "cause": exchange["_id"], "cause_type": rule, "at": at, "quarter": quarter_of(at),
                 "week": week_of(at), "note": exchange.get("reason") if rule == "exchange_reversal" else exchange.get("note")}
        try:
            self.ledger.entries.insert(entry)
        except DuplicateKey:
            pass


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _public(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("outbox", "outbox_due", "seen", "version")}
