"""The generated city: townships, villages, 片/组/邻 with their leads, households, contacts and
departments — every number derived from the city's description and the seed, nothing at random
outside it.

Phones: China has no officially reserved fictitious mobile range, so every generated number starts
with ``1999`` followed by a 7-digit serial (``is_simulated_phone``); the simulator sends through the
console channel only, so none is ever dialled.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

PHONE_PREFIX = "1999"
SURNAMES = "毛周彭刘胡文谭李王张陈杨赵黄吴罗邓曾贺易唐龙欧郭石蒋许宋颜钟"
GIVEN = "建华立新桂香秀兰志强国平海明红英德军伟芳丽春生金玉梅云兵勇辉亮琴霞清湘水林"
TOWNSHIP_NAMES = ("清溪镇", "银田镇", "如意镇", "永义乡", "韶山乡", "杨林乡")
VILLAGE_STEMS = "韶山银田平里如意永义杨林大坪石屋清溪湘乡黄田白石竹鸡东茅龙潭滴水杨梅青年双新"
DEPARTMENTS = (("zjj", "住房和城乡建设局"), ("jtj", "交通运输局"), ("cg", "城市管理和综合执法局"),
               ("mzj", "民政局"), ("zrzy", "自然资源局"), ("sl", "水利局"), ("gdj", "供电公司"),
               ("dx", "电信公司"), ("wj", "卫生健康局"), ("rs", "人力资源和社会保障局"), ("nyj", "农业农村局"),
               ("sfj", "司法局"))
# Which department leads a category that reaches the city (the responsibility matrix).
MATRIX = {"environment": "cg", "road": "jtj", "water": "sl", "power": "gdj", "dispute": "sfj", "hazard": "zjj",
          "housing": "zjj", "policy": "mzj", "social": "rs", "other": "cg"}
NUMERALS = "一二三四五六七八九十"


def is_simulated_phone(phone: str) -> bool:
    return phone.startswith(PHONE_PREFIX) and len(phone) == 11


def numeral(n: int) -> str:
    if n <= 10:
        return NUMERALS[n - 1]
    if n < 20:
        return "十" + NUMERALS[n - 11]
    tens, ones = divmod(n, 10)
    return NUMERALS[tens - 1] + "十" + (NUMERALS[ones - 1] if ones else "")


@dataclass
class Post:
    level: str
    path: tuple[str, ...]
    lead: str | None
    phone: str | None


@dataclass
class Household:
    path: tuple[str, str, str, str]
    head: str
    address: str
    phone: str
    key: bool


@dataclass
class Township:
    code: str
    name: str
    villages: list[str] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    households: list[Household] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)


@dataclass
class City:
    code: str
    name: str
    townships: list[Township]
    departments: list[tuple[str, str]]
    matrix: dict[str, str]

    def counts(self) -> dict[str, int]:
        posts = [p for t in self.townships for p in t.posts]
        out = {"townships": len(self.townships), "villages": sum(len(t.villages) for t in self.townships)}
        for level, key in (("area", "areas"), ("group", "groups"), ("neighbourhood", "neighbourhoods")):
            out[key] = sum(1 for p in posts if p.level == level)
        out["vacant_posts"] = sum(1 for p in posts if p.lead is None)
        out["households"] = sum(len(t.households) for t in self.townships)
        out["key_households"] = sum(h.key for t in self.townships for h in t.households)
        out["departments"] = len(self.departments)
        return out


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` in ``parts`` shares of at least one, near-even with a seeded jitter."""
    weights = [0.6 + 0.8 * rng.random() for _ in range(parts)]
    spare = total - parts
    shares = [1 + int(spare * w / sum(weights)) for w in weights]
    for i in range(total - sum(shares)):
        shares[i % parts] += 1
    return shares


class _Names:
    def __init__(self, rng: random.Random):
        self.rng, self.serial = rng, 0

    def person(self) -> str:
        return self.rng.choice(SURNAMES) + "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2))))

    def phone(self) -> str:
        self.serial += 1
        return f"{PHONE_PREFIX}{self.serial:07d}"


def generate(spec: dict, seed: int) -> City:
    rng = random.Random(f"city:{seed}")
    names = _Names(rng)
    townships = [Township(f"{spec['code']}{100 + i:03d}", TOWNSHIP_NAMES[i] if i < len(TOWNSHIP_NAMES) else f"第{numeral(i + 1)}镇")
                 for i in range(spec["townships"])]
    villages = _villages(townships, split(spec["villages"], len(townships), rng), rng)
    areas = _children(villages, spec["areas"], rng, lambda k: f"{numeral(k)}片", scope=1)
    groups = _children(areas, spec["groups"], rng, lambda k: f"{numeral(k)}组", scope=1)
    hoods = _children(groups, spec["neighbourhoods"], rng, lambda k: f"第{k}邻", scope=3)
    for level, units in (("area", areas), ("group", groups), ("neighbourhood", hoods)):
        for town, path in units:
            vacant = rng.random() < spec["vacant_share"]
            town.posts.append(Post(level, path, None if vacant else names.person(), None if vacant else names.phone()))
    _households(hoods, spec["households"], spec["key_household_share"], rng, names)
    for town in townships:
        town.contacts = _contacts(town, names)
    departments = list(DEPARTMENTS[:spec["departments"]])
    present = {d for d, _ in departments}
    matrix = {c: (d if d in present else departments[0][0]) for c, d in MATRIX.items()}
    return City(spec["code"], spec["name"], townships, departments, matrix)


def _villages(townships, counts, rng) -> list:
    out, used = [], set()
    for town, n in zip(townships, counts):
        for _ in range(n):
            name = _village_name(rng, used)
            town.villages.append(name)
            out.append((town, (name,)))
    return out


def _village_name(rng: random.Random, used: set) -> str:
    while True:
        name = "".join(rng.sample(VILLAGE_STEMS, 2)) + "村"
        if name not in used:
            used.add(name)
            return name


def _children(parents: list, total: int, rng: random.Random, name, scope: int) -> list:
    """Splits ``total`` units across ``parents``; names are numbered within each village, so an
    address (village + group + number) is unique in its township."""
    out, per_village = [], {}
    for (town, path), n in zip(parents, split(total, len(parents), rng)):
        for _ in range(n):
            key = (town.code, *path[:scope])
            per_village[key] = per_village.get(key, 0) + 1
            out.append((town, path + (name(per_village[key]),)))
    return out


def _households(hoods: list, total: int, key_share: float, rng: random.Random, names: _Names) -> None:
    numbers: dict[tuple, int] = {}
    for (town, path), n in zip(hoods, split(total, len(hoods), rng)):
        for _ in range(n):
            stem = (town.code, path[0], path[2])
            numbers[stem] = numbers.get(stem, 0) + 1
            address = f"{path[0]}{path[2]}{numbers[stem]}号"
            town.households.append(Household(path, names.person(), address, names.phone(), rng.random() < key_share))


def _contacts(town: Township, names: _Names) -> list[dict]:
    rows = []
    for village in town.villages:
        for order, role in enumerate(("值班", "书记"), start=1):
            rows.append({"村(社区)": village, "姓名": names.person(), "职务": role, "电话": names.phone(), "顺序": order})
    for order, role in enumerate(("值班", "分管领导"), start=1):
        rows.append({"村(社区)": "", "姓名": names.person(), "职务": role, "电话": names.phone(), "顺序": order})
    return rows
