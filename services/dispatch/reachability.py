"""Posts nobody could reach: a lead whose holder has no address on any channel leads are sent on.

Kept small and apart so that other contacts (a village committee's or the township staff's, when
the org holds them) can be passed in the same list: ``unreachable_posts`` takes the org and any
contacts, each {"unit_id", "name", "phone", "wecom_id"}, and the channels in use.

Channels: "sms" reaches a mobile number (a landline cannot take a text message), "wecom" a WeCom
userid, "voice" any phone. ``LEAD_CHANNELS`` is what a lead is expected to be reachable on when the
caller does not say (notify's routes choose among these per township).
"""
from __future__ import annotations

from shared.domain import phones
from shared.domain.levels import LEAD_LEVELS

from .roster import Org

LEAD_CHANNELS = ("sms", "wecom")
_REACHES = {
    "sms": lambda c: phones.is_mobile(c.get("phone")),
    "wecom": lambda c: bool(c.get("wecom_id")),
    "voice": lambda c: phones.is_valid(c.get("phone")),
}
CHANNEL_NAMES = {"sms": "短信", "wecom": "企业微信", "voice": "电话"}


def unreachable_posts(org: Org, contacts: list[dict], channels: tuple[str, ...] | None = None) -> list[dict]:
    """Staffed lead posts none of whose contacts any channel in ``channels`` reaches, with the
    reason in words for the administrator. Vacant posts are vacancies, listed elsewhere."""
    channels = tuple(c for c in (channels or LEAD_CHANNELS) if c in _REACHES)
    by_unit: dict[str, list[dict]] = {}
    for contact in contacts:
        by_unit.setdefault(contact["unit_id"], []).append(contact)
    out = []
    for unit in org.units.values():
        if unit.level not in LEAD_LEVELS or unit.lead is None:
            continue
        reachable = any(_REACHES[ch](c) for c in by_unit.get(unit.id, ()) for ch in channels)
        if not reachable:
            out.append({"unit_id": unit.id, "name": unit.lead.name, "reason": _reason(channels)})
    return out


def lead_contacts(units: list[dict]) -> list[dict]:
    """The holders of posts as contacts, from unit documents as dispatch stores them."""
    return [{"unit_id": u["_id"], "name": (u.get("lead") or {}).get("name"),
             "phone": (u.get("lead") or {}).get("phone"), "wecom_id": (u.get("lead") or {}).get("wecom_id")}
            for u in units if (u.get("lead") or {}).get("name")]


def _reason(channels: tuple[str, ...]) -> str:
    wanted = "、".join(CHANNEL_NAMES[c] for c in channels)
    if "sms" in channels:
        return f"没有可用的联系方式（{wanted}）：只有固定电话收不到短信，请补手机号或企业微信账号"
    return f"没有可用的联系方式（{wanted}）"
