"""积分超市 (services/dispatch/supervision/exchanges.py) on the in-memory store: the balance never goes
negative, stock is taken once per exchange, the exchange key makes a resend harmless, a reversal puts
points and stock back once, the ledger tells the whole story and standings leave spending out. The
HTTP side (validation, roles, tenancy) is in tests/system/test_supervision_exchanges.py."""
from __future__ import annotations

import pytest

from services.dispatch.supervision.exchanges import ExchangeError, Exchanges
from services.dispatch.supervision.ledger import Ledger
from services.dispatch.supervision.rules import Rules
from shared.clock import FakeClock, iso
from tests.support.fakes.memory_store import MemoryStore

TOWNSHIP = "430382100"
OTHER = "430382101"
UNITS = {
    "u-nb1": {"_id": "u-nb1", "township": TOWNSHIP, "level": "neighbourhood", "name": "第1邻",
              "lead": {"name": "周桂香", "phone": "13873100001"}},
    "u-nb2": {"_id": "u-nb2", "township": TOWNSHIP, "level": "neighbourhood", "name": "第2邻", "lead": None},
    "u-vil": {"_id": "u-vil", "township": TOWNSHIP, "level": "village", "name": "韶山村",
              "lead": {"name": "毛书记", "phone": "13873100009"}},
}


class Org:
    def unit(self, unit_id):
        return UNITS.get(unit_id)


@pytest.fixture
def shop():
    store = MemoryStore()
    clock = FakeClock()
    exchanges = Exchanges(store, Ledger(store, Rules(store)), Org(), clock)
    lead = exchanges.lead_of_unit(TOWNSHIP, "u-nb1")
    return exchanges, lead, clock


def earn(exchanges: Exchanges, lead: dict, points: float, n: int = 0) -> None:
    at = iso(exchanges.clock.now())
    exchanges.ledger.entries.insert({
        "_id": f"earned-{n}-{points}", "township": TOWNSHIP, "rule": "resolve_on_time", "rule_name": "按时办结",
        "points": points, "lead_key": lead["lead_key"], "unit_id": lead["unit_id"], "unit_name": lead["unit_name"],
        "lead_name": lead["lead_name"], "level": lead["level"], "case_id": None, "cause": "e", "cause_type": "x",
        "at": at, "quarter": "2026Q4", "week": "2026-11-02", "note": None})


def soap(exchanges: Exchanges, price: int = 30, stock: int = 5) -> dict:
    return exchanges.add_reward(TOWNSHIP, {"name": "洗衣液", "price": price, "stock": stock}, actor="镇综治中心")


def test_an_exchange_debits_points_takes_stock_and_is_in_the_ledger(shop):
    exchanges, lead, _ = shop
    earn(exchanges, lead, 50)
    item = soap(exchanges)
    done, new = exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-0000001", actor="周桂香")
    assert new and done["points"] == 30 and done["status"] == "done" and done["item_name"] == "洗衣液"
    assert exchanges.balance(TOWNSHIP, lead["lead_key"]) == {"lead_key": lead["lead_key"], "earned": 50,
                                                             "spent": 30, "balance": 20}
    assert exchanges.reward(TOWNSHIP, item["_id"])["stock"] == 4
    entries = exchanges.ledger.list(TOWNSHIP, lead=lead["lead_key"])
    [spent] = [e for e in entries if e["rule"] == "exchange"]
    assert sum(e["points"] for e in entries) == 20 and spent["points"] == -30
    assert spent["cause"] == done["_id"] and spent["rule_name"] == "积分兑换：洗衣液×1"


def test_not_enough_points_is_refused_with_the_balance_and_the_price(shop):
    exchanges, lead, _ = shop
    earn(exchanges, lead, 12)
    item = soap(exchanges)
    with pytest.raises(ExchangeError, match="积分不足：余额 12，需要 30") as refused:
        exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-0000001", actor="周桂香")
    assert refused.value.status == 409
    assert exchanges.reward(TOWNSHIP, item["_id"])["stock"] == 5
    assert exchanges.balance(TOWNSHIP, lead["lead_key"])["spent"] == 0
    with pytest.raises(ExchangeError, match="余额 12，需要 60"):
        exchanges.exchange(TOWNSHIP, lead, item["_id"], 2, "ex-0000002", actor="周桂香")


def test_the_same_key_twice_is_one_exchange(shop):
    exchanges, lead, _ = shop
    earn(exchanges, lead, 100)
    item = soap(exchanges)
    first, _ = exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-0000001", actor="周桂香")
    again, new = exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-0000001", actor="周桂香")
    assert not new and again["_id"] == first["_id"]
    assert exchanges.balance(TOWNSHIP, lead["lead_key"])["spent"] == 30
    assert exchanges.reward(TOWNSHIP, item["_id"])["stock"] == 4
    with pytest.raises(ExchangeError, match="另一笔兑换"):
        exchanges.exchange(TOWNSHIP, lead, soap_two(exchanges)["_id"], 1, "ex-0000001", actor="周桂香")


def soap_two(exchanges):
    return exchanges.add_reward(TOWNSHIP, {"name": "大米（5kg）", "price": 40, "stock": 1}, actor="镇综治中心")


def test_a_retry_after_a_crash_charges_once(shop):
    """The wallet and the item remember the key: a crash after both were written and before the
    exchange was recorded is completed by the retry, not charged again."""
    exchanges, lead, _ = shop
    earn(exchanges, lead, 100)
    item = soap(exchanges)
    exchanges._debit(TOWNSHIP, lead["lead_key"], "ex-crashed", 30)
    exchanges._take_stock(TOWNSHIP, lead["lead_key"], exchanges.reward(TOWNSHIP, item["_id"]), "ex-crashed", 1, 30)
    done, new = exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-crashed", actor="周桂香")
    assert new and exchanges.balance(TOWNSHIP, lead["lead_key"])["balance"] == 70
    assert exchanges.reward(TOWNSHIP, item["_id"])["stock"] == 4


def test_out_of_stock_and_inactive_items_are_refused_and_nothing_is_charged(shop):
    exchanges, lead, _ = shop
    earn(exchanges, lead, 200)
    rice = soap_two(exchanges)
    exchanges.exchange(TOWNSHIP, lead, rice["_id"], 1, "ex-0000001", actor="周桂香")
    with pytest.raises(ExchangeError, match="库存不足：剩余 0，需要 1"):
        exchanges.exchange(TOWNSHIP, lead, rice["_id"], 1, "ex-0000002", actor="周桂香")
    exchanges.change_reward(TOWNSHIP, rice["_id"], {"active": False, "stock": 3}, actor="镇综治中心")
    with pytest.raises(ExchangeError, match="已下架"):
        exchanges.exchange(TOWNSHIP, lead, rice["_id"], 1, "ex-0000003", actor="周桂香")
    assert exchanges.balance(TOWNSHIP, lead["lead_key"])["spent"] == 40


def test_an_exchange_that_lands_between_reading_the_balance_and_debiting_it_wins_alone(shop):
    """Two requests for the last 30 points: the second one's balance was read before the first was
    debited. The debit re-checks on the wallet it writes (compare-and-set), so only one passes."""
    exchanges, lead, _ = shop
    earn(exchanges, lead, 30)
    item = soap(exchanges, stock=10)
    read_balance = exchanges.earned
    calls = []

    def earned_then_the_other_request(township, key):
        value = read_balance(township, key)
        if not calls:
            calls.append("other")
            exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-other-01", actor="周桂香")
        return value
    exchanges.earned = earned_then_the_other_request
    with pytest.raises(ExchangeError, match="积分不足：余额 0，需要 30"):
        exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-mine-001", actor="周桂香")
    exchanges.earned = read_balance
    assert exchanges.balance(TOWNSHIP, lead["lead_key"])["balance"] == 0
    assert exchanges.reward(TOWNSHIP, item["_id"])["stock"] == 9


def test_a_reversal_gives_points_and_stock_back_once(shop):
    exchanges, lead, _ = shop
    earn(exchanges, lead, 30)
    item = soap(exchanges)
    done, _ = exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-0000001", actor="周桂香")
    undone = exchanges.reverse(TOWNSHIP, done["_id"], "商品质量问题，已退回", actor="镇综治中心")
    assert undone["status"] == "reversed" and undone["reason"] == "商品质量问题，已退回"
    assert undone["reversed_by"] == "镇综治中心"
    assert exchanges.balance(TOWNSHIP, lead["lead_key"])["balance"] == 30
    assert exchanges.reward(TOWNSHIP, item["_id"])["stock"] == 5
    with pytest.raises(ExchangeError, match="已撤销"):
        exchanges.reverse(TOWNSHIP, done["_id"], "再撤一次", actor="镇综治中心")
    rules = [e["rule"] for e in exchanges.ledger.list(TOWNSHIP, lead=lead["lead_key"])]
    assert sorted(rules) == ["exchange", "exchange_reversal", "resolve_on_time"]
    assert exchanges.period_totals(TOWNSHIP, "2026", "2027") == {"count": 0, "points": 0, "items": 0}
    with pytest.raises(ExchangeError) as missing:
        exchanges.reverse(OTHER, done["_id"], "别的镇", actor="外镇")
    assert missing.value.status == 404


def test_only_a_lead_in_post_at_a_lead_level_has_points(shop):
    exchanges, _, _ = shop
    for unit_id, message in (("u-nb2", "不是在岗的三长"), ("u-vil", "不是在岗的三长"), ("nope", "没有这个岗位")):
        with pytest.raises(ExchangeError, match=message) as refused:
            exchanges.lead_of_unit(TOWNSHIP, unit_id)
        assert refused.value.field == "unit_id"
    with pytest.raises(ExchangeError, match="没有这个岗位"):
        exchanges.lead_of_unit(OTHER, "u-nb1")


def test_catalogue_names_are_unique_per_township_and_items_are_walled(shop):
    exchanges, _, _ = shop
    item = soap(exchanges)
    with pytest.raises(ExchangeError, match="同名商品"):
        soap(exchanges)
    exchanges.add_reward(OTHER, {"name": "洗衣液", "price": 10, "stock": 1}, actor="外镇")
    assert [i["name"] for i in exchanges.catalogue(TOWNSHIP)] == ["洗衣液"]
    with pytest.raises(ExchangeError) as missing:
        exchanges.reward(OTHER, item["_id"])
    assert missing.value.status == 404


def test_standings_count_what_was_earned_not_what_was_spent():
    from services.dispatch.supervision.cards import Cards
    from services.dispatch.supervision.facts import STINT_COLUMNS, STINT_INDEXES

    store = MemoryStore()
    ledger = Ledger(store, Rules(store))
    exchanges = Exchanges(store, ledger, Org(), FakeClock())
    lead = exchanges.lead_of_unit(TOWNSHIP, "u-nb1")
    earn(exchanges, lead, 40)
    item = soap(exchanges)
    exchanges.exchange(TOWNSHIP, lead, item["_id"], 1, "ex-0000001", actor="周桂香")

    class Tree(Org):
        def tree(self, township):
            return list(UNITS.values())
    stints = store.collection("stints", STINT_INDEXES, columns=STINT_COLUMNS)
    cards = Cards(store, Tree(), ledger, stints, Rules(store), cases=None, escalator=None, clock=FakeClock())
    [standing] = [s for s in cards.standings(TOWNSHIP, "2026Q4") if s["lead_key"] == lead["lead_key"]]
    assert standing["points"] == 40
