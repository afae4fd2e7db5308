"""Whether a post that can hold a case has somebody the configured channels can reach.

Pure: a list of posts (each with its people), the channels serving each kind of recipient, out
come the posts nobody can be reached at, with the reason in Chinese. dispatch lists them in the
roster and contacts imports' answers, at ``GET …/reachability`` and on the board; notify uses
``reaches`` to pick the next person who can act when a holder has no usable address.

What a channel needs of a person:

- ``aliyun_sms`` / ``tencent_sms``: an 11-digit mobile (a landline cannot take an SMS);
- ``wecom``: a WeCom userid;
- ``wechat_mp``: an openid (leads and cadres have none: residents only);
- ``console``: what a real channel would need, a mobile or a WeCom userid — the console reaches
  nobody's handset, so counting an empty address as reached would hide the gap in development;
- any other channel: a phone or a WeCom userid.

A lead post (邻长/组长/片长) without a lead is a vacancy: the chain passes it by, it never holds a
case, so it is not listed here (the roster import counts vacancies). A village committee (村两委)
and the township's staff always can hold a case, so they are listed when nobody there is reachable.
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping, Sequence

from . import phones
from .levels import COLLECTIVE_LEVELS, POST_TITLES

DEFAULT_ROUTE: tuple[str, ...] = ("console",)
SMS = frozenset({"aliyun_sms", "tencent_sms"})
NEEDS = {"aliyun_sms": "手机号", "tencent_sms": "手机号", "wecom": "企业微信账号", "wechat_mp": "微信openid",
         "console": "手机号或企业微信账号"}
NO_CONTACT = "未登记联系人"


def kind_of(level: str) -> str:
    """The recipient kind notify routes a post's people by: the township's staff, or a lead."""
    return "staff" if level == "township" else "lead"


def reaches(channel: str, person: Mapping | None) -> bool:
    """Whether `channel` has the address it needs to reach `person` ({phone, wecom_id, openid})."""
    person = person or {}
    mobile = phones.mobile(person.get("phone")) is not None
    wecom = bool(person.get("wecom_id"))
    if channel in SMS:
        return mobile
    if channel == "wecom":
        return wecom
    if channel == "wechat_mp":
        return bool(person.get("openid"))
    if channel == "console":
        return mobile or wecom
    return bool(person.get("phone")) or wecom


def reachable_by(route: Iterable[str], person: Mapping | None) -> bool:
    return any(reaches(channel, person) for channel in route)


def routes_for(routes_json: str | None, township: str) -> dict[str, tuple[str, ...]]:
    """lead/staff → channels, read as notify reads SANZHANG_NOTIFY_ROUTES (a table notify validates
    at its start-up; here anything unreadable counts as the default, the console)."""
    try:
        table = json.loads(routes_json) if (routes_json or "").strip() else {}
    except ValueError:
        table = {}
    table = table if isinstance(table, dict) else {}
    own, default = table.get(township) or {}, table.get("default") or {}
    out = {}
    for kind in ("lead", "staff"):
        route = own.get(kind) if isinstance(own, dict) and kind in own else (
            default.get(kind) if isinstance(default, dict) else None)
        out[kind] = tuple(route) if isinstance(route, list) and route else DEFAULT_ROUTE
    return out


def unreachable_posts(posts: Sequence[Mapping], routes: Mapping[str, Sequence[str]]) -> list[dict]:
    """Posts that can hold a case and where nobody is reachable by the post's route.

    A post: {unit_id, level, unit_name, people: [{name, phone, wecom_id}, …]}; `routes`: kind
    (lead/staff) → channel names in order, as ``routes_for`` returns. Each answer row is
    {unit_id, level, unit_name, title, reason, channels}; the order is the posts' order."""
    out = []
    for post in posts:
        level = post.get("level")
        people = [p for p in post.get("people") or [] if p]
        if not people and level not in COLLECTIVE_LEVELS:
            continue  # a vacancy: the chain passes it by
        route = tuple(routes.get(kind_of(level)) or DEFAULT_ROUTE)
        if any(reachable_by(route, p) for p in people):
            continue
        out.append({"unit_id": post.get("unit_id"), "level": level, "unit_name": post.get("unit_name"),
                    "title": POST_TITLES.get(level, ""), "channels": list(route),
                    "reason": _reason(people, route)})
    return out


def _reason(people: list, route: Sequence[str]) -> str:
    if not people:
        return NO_CONTACT
    needs = "或".join(dict.fromkeys(NEEDS.get(c, "电话或企业微信账号") for c in route))
    reason = f"联系人都没有可用的{needs}（已启用的渠道：{'、'.join(route)}）"
    if "手机号" in needs and any(p.get("phone") and phones.mobile(p.get("phone")) is None for p in people):
        reason += "：只有固定电话收不到短信，请补手机号或企业微信账号"  # the commonest cause, named
    return reason
