"""A small fictional roster for 清溪镇, for demos and tests: two villages, every level filled in.

All names and phone numbers are made up. One neighbourhood lead post (银田村四组第2邻) is vacant,
so a demo can show a report routed past a missing 邻长.
"""
from __future__ import annotations

import csv
import io

from shared.domain.demo import DEMO_TOWNSHIP, DEMO_TOWNSHIP_NAME

# village → areas → groups → neighbourhoods → households. A lead is (name, WeCom id); phone numbers
# are handed out in file order, so the data stays readable. A household is (head, house number, has
# a phone, key household).
_TREE = (
    ("韶山村", (
        ("一片", ("毛建华", "maojianhua"), (
            ("一组", ("彭立新", "penglixin"), (
                ("第1邻", ("周桂香", "zhouguixiang"), (
                    ("毛德生", 12, True, True), ("彭淑芬", 14, False, False), ("周建国", 15, True, False))),
                ("第2邻", ("李春生", "lichunsheng"), (
                    ("李长庚", 21, True, False), ("毛秀英", 23, True, True))),
            )),
            ("二组", ("张跃进", "zhangyuejin"), (
                ("第1邻", ("刘玉兰", "liuyulan"), (
                    ("刘满仓", 3, True, False), ("张菊华", 5, True, False), ("钟福生", 6, False, True))),
                ("第2邻", ("钟海波", "zhonghaibo"), (
                    ("钟国强", 18, True, False), ("易翠莲", 20, True, False))),
            )),
        )),
        ("二片", ("彭红梅", "penghongmei"), (
            ("三组", ("易新民", "yixinmin"), (
                ("第1邻", ("郭建军", "guojianjun"), (
                    ("郭永年", 2, True, True), ("彭桂芝", 4, True, False))),
                ("第2邻", ("易秋云", "yiqiuyun"), (
                    ("易松柏", 11, True, False), ("毛银花", 13, False, False), ("李德明", 16, True, False))),
            )),
            ("四组", ("李卫东", "liweidong"), (
                ("第1邻", ("赵美玲", "zhaomeiling"), (
                    ("赵保国", 7, True, False), ("刘翠英", 9, True, True))),
                ("第2邻", ("毛国平", "maoguoping"), (
                    ("毛新华", 25, True, False), ("周冬梅", 27, True, False))),
            )),
        )),
    )),
    ("银田村", (
        ("一片", ("胡志刚", "huzhigang"), (
            ("一组", ("文建平", "wenjianping"), (
                ("第1邻", ("胡秀兰", "huxiulan"), (
                    ("胡长青", 1, True, False), ("文桂英", 3, True, True), ("谭光明", 8, True, False))),
                ("第2邻", ("谭铁军", "tantiejun"), (
                    ("谭德胜", 15, True, False), ("胡春花", 17, False, False))),
            )),
            ("二组", ("谭爱民", "tanaimin"), (
                ("第1邻", ("文小红", "wenxiaohong"), (
                    ("文立华", 6, True, False), ("罗秀珍", 10, True, True))),
                ("第2邻", ("罗建新", "luojianxin"), (
                    ("罗永贵", 22, True, False), ("胡国庆", 24, True, False), ("谭月娥", 26, True, False))),
            )),
        )),
        ("二片", ("文丽君", "wenlijun"), (
            ("三组", ("贺运来", "heyunlai"), (
                ("第1邻", ("贺桂兰", "heguilan"), (
                    ("贺茂林", 5, True, False), ("邓淑华", 7, True, True))),
                ("第2邻", ("邓志勇", "dengzhiyong"), (
                    ("邓光辉", 12, True, False), ("贺春梅", 14, False, False))),
            )),
            ("四组", ("邓红军", "denghongjun"), (
                ("第1邻", ("罗建英", "luojianying"), (
                    ("罗德福", 2, True, False), ("邓翠兰", 4, True, False))),
                ("第2邻", None, (  # vacant: the previous 邻长 moved away and nobody has been chosen yet
                    ("贺满堂", 19, True, True), ("罗秋菊", 21, True, False))),
            )),
        )),
    )),
)

_HEADER = ("村(社区)", "片区", "片长", "片长电话", "片长企业微信", "村民小组", "组长", "组长电话", "组长企业微信",
           "邻", "邻长", "邻长电话", "邻长企业微信", "户主", "地址", "联系电话", "重点户")


def demo_roster_csv() -> bytes:
    """The demo roster as Excel in China saves a CSV: GBK, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_HEADER)
    writer.writerows(_rows())
    return out.getvalue().encode("gbk")


def _rows():
    lead_phones = (f"1387310{n:04d}" for n in range(1, 100))
    household_phones = (f"1397320{n:04d}" for n in range(1, 100))
    for village, areas in _TREE:
        for area, area_lead, groups in areas:
            area_cells = (area, *_lead_cells(area_lead, lead_phones))
            for group, group_lead, neighbourhoods in groups:
                group_cells = (group, *_lead_cells(group_lead, lead_phones))
                for neighbourhood, neighbourhood_lead, households in neighbourhoods:
                    neighbourhood_cells = (neighbourhood, *_lead_cells(neighbourhood_lead, lead_phones))
                    for head, number, has_phone, key in households:
                        yield (village, *area_cells, *group_cells, *neighbourhood_cells, head,
                               f"{village}{group}{number}号", next(household_phones) if has_phone else "",
                               "是" if key else "")


def _lead_cells(lead, phones) -> tuple[str, str, str]:
    if lead is None:
        return ("", "", "")
    name, wecom_id = lead
    return (name, next(phones), wecom_id)


# Each village committee's duty contacts and the township's staff (村(社区) empty): name, duty,
# WeCom id, order of precedence. Phones are handed out in order, as for the leads.
_CONTACTS = (
    ("韶山村", "毛建国", "值班", "maojianguo", 1), ("韶山村", "彭志强", "书记", "pengzhiqiang", 2),
    ("银田村", "胡立平", "值班", "hulipin", 1), ("银田村", "文国华", "主任", "wenguohua", 2),
    ("", "刘晓东", "值班", "liuxiaodong", 1), ("", "谭振宇", "分管领导", "tanzhenyu", 2),
)


def demo_contacts_csv() -> bytes:
    """The demo township's village committee and staff contacts, as the contacts sheet would hold them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("村(社区)", "姓名", "职务", "电话", "企业微信", "顺序"))
    for n, (village, name, duty, wecom_id, order) in enumerate(_CONTACTS, start=1):
        writer.writerow((village, name, duty, f"1387330{n:04d}", wecom_id, order))
    return out.getvalue().encode("gbk")


def load_demo(org, book=None) -> dict:
    """Loads the demo township, its roster and (given the contact book) its village committee and
    staff contacts into dispatch (the CLI's demo run): someone is reachable at every level."""
    org.ensure_township(DEMO_TOWNSHIP, DEMO_TOWNSHIP_NAME, DEMO_TOWNSHIP[:6])
    answer = org.import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "demo.csv", actor="demo")
    if book is not None:
        answer["counts"]["contacts"] = book.import_file(DEMO_TOWNSHIP, demo_contacts_csv(), "contacts.csv",
                                                        actor="demo")["counts"]["contacts"]
    return answer
