"""Chinese message templates, one per (event type, recipient role), overridable per township.

A template key is "<event type>:<role>". Variables are written {name}; each event family offers a
fixed set (VARIABLES) and nothing else may appear — no attribute access, no format specs.
The signature 【…】 is prefixed at render time (SANZHANG_NOTIFY_SIGNATURE), because carriers
count it in the message length.

SMS billing: a message of Chinese text (UCS-2) fits one segment up to 70 characters, the
signature included; a longer one is cut into segments of 67. Texts carry one *elastic*
variable (the case summary, the supervision note, the list of tracking numbers) that is
shortened with "…" so the whole message stays within one segment when the fixed parts allow.
"""
from __future__ import annotations

import math
import string

from shared.domain.categories import CATEGORIES
from shared.domain.levels import POST_TITLES


CASE_VARIABLES = frozenset({
    "link",  # the short link to the case for someone who must act (…/l/<code>), else 查询码<tracking_no>
    "name", "tracking_no", "category_name", "summary", "unit_name", "level_title", "holder_name",
    "from_unit", "reason", "note", "due_local", "promise_local", "department_name",
    "rate_url",  # report.rating_requested: the township's rating link for this report (…/r/<查询码>)
    "forwarded_from",  # the post a message was meant for when nobody there could be reached (else empty)
})
DEPARTMENT_VARIABLES = frozenset({
    "name", "department_name", "tracking_no", "category_name", "summary", "due_local", "township",
})
DIGEST_VARIABLES = frozenset({"name", "count", "minutes", "tracking_nos"})
SIGNIN_VARIABLES = frozenset({"name", "code", "minutes"})   # code: stored as ******, filled in at sending
ELASTIC = ("summary", "note", "tracking_nos")

TEMPLATES: dict[str, str] = {
    # to the holder of a case (a lead, the township's staff)
    "case.assigned:assignee": "{name}您好，{category_name}诉求待您接单，{due_local}前办结，{link}：{summary}",
    "case.escalated:assignee": "{name}您好，{from_unit}上交{category_name}诉求待您接单，{link}，原因：{reason}",
    "case.reassigned:assignee": "{name}您好，镇里改派给您一件{category_name}诉求，{due_local}前办结，{link}：{summary}",
    "case.reassigned:previous": "{name}您好，查询码{tracking_no}的{category_name}诉求已改派{unit_name}办理，您无需再办。",
    "case.supervised:assignee": "{name}您好，{category_name}诉求被督办，请尽快办理并答复，{link}：{note}",
    "sla.warning:assignee": "{name}您好，{category_name}诉求{reason}（时限{due_local}），抓紧办理：{link}",
    "sla.warning:supervisor": "{name}您好，{unit_name}{holder_name}的{category_name}诉求{reason}（时限{due_local}），查询码{tracking_no}，请督促。",
    "sla.breached:previous": "{name}您好，查询码{tracking_no}的{category_name}诉求{reason}，已按规定上交上一级。",
    "sla.breached:township": "{unit_name}{holder_name}{reason}，{category_name}诉求已自动上交，请督办：{link}",
    # to the resident who reported
    "case.accepted:resident": "您反映的{category_name}问题（查询码{tracking_no}）已由{unit_name}{level_title}接单，预计{promise_local}前办结。",
    "case.resolved:resident": "您反映的{category_name}问题（查询码{tracking_no}）已办结，请在“三长制”小程序凭查询码评价：满意/基本满意/不满意。",
    "case.signed_off:resident": "您反映的问题（查询码{tracking_no}）已由{department_name}办结销号，请在“三长制”小程序凭查询码评价。",
    # to a city department (from the escalation service's events)
    "department.assigned:department": "{department_name}：有{category_name}诉求转贵单位办理，查询码{tracking_no}，请于{due_local}前签收办理：{summary}",
    "department.sla_breached:department": "{department_name}：查询码{tracking_no}的诉求已超过办理时限（{due_local}），请尽快办理并反馈。",
    # the resident's loop (intake's loop.py, dispatch's resident_loop.py)
    "report.rating_requested:resident": "您反映的问题（查询码{tracking_no}）已办结，请点此评价：{rate_url}",
    "case.merged:resident": "您反映的问题（查询码{tracking_no}）已与同类诉求合并办理，进展和结果将一并告知您。",
    "case.reopened:assignee": "{name}您好，{category_name}诉求{reason}，请尽快接单办理，{link}：{note}",
    "followup.created:staff": "{name}您好，{category_name}诉求办结后群众未评价，请电话回访并登记：{link}",
    # pausing the clock (dispatch's pausing.py): the resident is asked for what is missing; the holder
    # hears when the resident answered or the pause ran out
    "case.paused:resident": "您反映的{category_name}问题（查询码{tracking_no}）需要您补充材料：{note}。请在“三长制”小程序凭查询码补充。",
    "case.resumed:assignee": "{name}您好，{category_name}诉求已恢复计时，请于{due_local}前办结，{link}",
    # many messages to one person within the rate-limit window, merged
    "notify.digest:recipient": "{name}您好，近{minutes}分钟您有{count}条新通知，请登录系统查看。查询码：{tracking_nos}",
    # people's sign-in (services/notify/signin_codes.py)
    "signin.code_requested:person": "{name}您好，您的登录验证码是{code}，{minutes}分钟内有效，请勿告诉他人。",
    # a resident signing in to 群众服务 (intake's resident_signin.py): anyone may, so the text says what for
    "signin.code_requested:resident": "您正在登录群众服务（反映问题、查看我的反映），验证码{code}，{minutes}分钟内有效，切勿告诉他人。",
    # to the resident when the lead city department takes their case (resident_policy.py: once)
    "department.assigned:resident": "您反映的{category_name}问题（查询码{tracking_no}）已转{department_name}办理，进展可凭查询码在“三长制”小程序查看。",
}


def variables_for(key: str) -> frozenset[str]:
    event_type = key.split(":", 1)[0]
    if event_type.startswith("department."):
        return DEPARTMENT_VARIABLES
    if event_type == "notify.digest":
        return DIGEST_VARIABLES
    if event_type == "signin.code_requested":
        return SIGNIN_VARIABLES
    return CASE_VARIABLES


# Realistic values: the longest names and reasons the system produces, for the segment test
# and the admin API's preview.
SAMPLE = {
    "name": "周桂香", "tracking_no": "7KQ4M2XC", "category_name": "安全隐患", "summary": "村口老桥栏杆断了两根，孩子上学要经过，很危险",
    "unit_name": "韶山村一组第1邻", "level_title": "邻长", "holder_name": "周桂香", "from_unit": "韶山村一组第1邻",
    "reason": "超出本级处理能力", "note": "群众反映强烈，请今天内到现场查看并答复", "due_local": "11月04日17:30",
    "promise_local": "11月04日17:30", "department_name": "韶山市住房和城乡建设局", "township": "清溪镇",
    "count": "12", "minutes": "10", "tracking_nos": "7KQ4M2XC、9PW3HJ6T、4NZ8RB2K、X5D7QF3M",
    "rate_url": "https://qingxi.example.cn/r/7KQ4M2XC", "code": "******",
    "link": "https://qx.cn/l/7KQ4M2XC",
}


def sms_length(text: str) -> tuple[int, int]:
    """(characters, billing segments). GSM-7-only text: 160/153; anything else: 70/67."""
    n = len(text)
    if n == 0:
        return 0, 0
    single, multi = (160, 153) if all(ord(c) < 128 for c in text) else (70, 67)
    return n, 1 if n <= single else math.ceil(n / multi)


class _Defaulting(dict):
    """A missing variable renders empty rather than failing a whole notification."""

    def __missing__(self, key):
        return ""


def template_for(key: str, overrides: dict | None = None) -> str | None:
    return (overrides or {}).get(key) or TEMPLATES.get(key)


def render(key: str, params: dict, *, signature: str = "三长制", overrides: dict | None = None,
           limit: int = 70) -> str | None:
    """The text for a key, or None when no template exists. The elastic variable is shortened
    so the whole text fits `limit` characters when the fixed parts leave room."""
    template = template_for(key, overrides)
    if template is None:
        return None
    prefix = f"【{signature}】" if signature else ""
    values = _Defaulting({k: "" if v is None else str(v) for k, v in params.items()})
    text = prefix + template.format_map(values)
    if len(text) <= limit:
        return text
    names = placeholders(template)
    for name in ELASTIC:
        if name in names and values.get(name):
            fixed = len(prefix + template.format_map(_Defaulting({**values, name: ""})))
            room = limit - fixed
            original = values[name]
            values[name] = original[: room - 1] + "…" if room > 1 else ""
            text = prefix + template.format_map(values)
            break
    return text


def placeholders(template: str) -> list[str]:
    """The variable names a template uses; ValueError for malformed braces."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def check_template(key: str, template: str) -> list[str]:
    """Problems with an override, in Chinese, for the API's 422 (empty list: fine)."""
    if key not in TEMPLATES:
        return [f"未知的模板：{key}（可用：{', '.join(sorted(TEMPLATES))}）"]
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return ["花括号不成对，变量应写作 {变量名}"]
    problems = []
    allowed = variables_for(key)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            problems.append(f"变量 {{{name}}} 写法不对，只能写作 {{变量名}}")
        elif name not in allowed:
            problems.append(f"未知变量 {{{name}}}（可用：{', '.join(sorted(allowed))}）")
        elif spec or conversion:
            problems.append(f"变量 {{{name}}} 不能带格式说明")
    return problems


def case_params(payload: dict, *, due_local: str = "", promise_local: str = "") -> dict:
    a = payload.get("assignee") or {}
    previous = payload.get("previous") or {}
    category = payload.get("category") or ""
    return {
        "tracking_no": payload.get("tracking_no") or "",
        "category_name": CATEGORIES.get(category, category),
        "summary": payload.get("summary") or "",
        "unit_name": a.get("unit_name") or "",
        "level_title": POST_TITLES.get(a.get("level"), ""),
        "holder_name": a.get("lead_name") or "",
        "from_unit": previous.get("unit_name") or "",
        "reason": payload.get("reason") or "",
        "note": payload.get("note") or "",
        "due_local": due_local,
        "promise_local": promise_local,
        "department_name": payload.get("department_name") or "",
    }


def department_params(payload: dict, *, due_local: str = "", township_name: str = "") -> dict:
    category = payload.get("category") or ""
    return {
        "department_name": payload.get("department_name") or "",
        "name": payload.get("department_name") or "",
        "tracking_no": payload.get("tracking_no") or "",
        "category_name": CATEGORIES.get(category, category) or "群众",
        "summary": payload.get("summary") or "",
        "due_local": due_local,
        "township": township_name,
    }
