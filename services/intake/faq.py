"""The instant answer (the "0" of 0211): match a resident's short, colloquial question against the
township's knowledge base and answer at once only when the match is confident.

How a question is read:

1. **Normalised**: NFKC (full-width → half-width), lower case, then a few colloquial phrasings are
   rewritten to the knowledge base's words ("医保卡" → "社保卡", "新农合" → "医保", "扯证" →
   "结婚登记", "几号"/"什么时候" → "时间" …).
2. **Segmented** with jieba (search mode, so "无犯罪记录证明" also yields "犯罪", "记录", "证明"),
   with a small domain dictionary added; the dictionary is loaded once per process, lazily, on the
   first question (about 1 s; jieba caches it in the temp folder).
3. **Filtered**: stopwords and filler ("请问", "怎么", "我家", "啊") are dropped; synonyms are mapped
   to one word ("补助"/"津贴" → "补贴", "报账" → "报销").

How an entry is ranked: **BM25** over each entry's question, keywords (关键词) and category (类别),
then two confidence features of the best entry:

- **coverage**: the share of the question's informative weight (idf) that the entry explains.
  Words the knowledge base has never seen count too (at ``UNKNOWN_WEIGHT`` of the rarest known
  word), so "路灯坏了" — all unknown words — has coverage 0 however the ranking comes out;
- **bigram cosine**: TF-IDF cosine of character bigrams, which catches what segmentation splits
  differently ("养老认证" against "资格认证").

``confidence = COVERAGE_SHARE × coverage + (1 − COVERAGE_SHARE) × bigram cosine``, and an answer is
given only when confidence ≥ ``THRESHOLD`` and it leads the runner-up entry by ≥ ``MARGIN``.

A question that reports a **problem** — something broken, a dispute, a grievance ("坏了", "漏水",
"吵起来", "拖欠", "没到账", "不公平", "投诉" …) — is never answered by the bot, even when it
mentions a policy word: "低保评得不公平" needs a person, not the low-income-allowance FAQ.

The threshold was calibrated on tests/data/faq_labelled.tsv (131 questions, 45 that must not be
answered) for precision first: see tests/unit/test_faq_matcher.py, which prints the figures.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

# -- calibrated constants (see the module docstring and tests/unit/test_faq_matcher.py) -------------
THRESHOLD = 0.45
MARGIN = 0.08
COVERAGE_SHARE = 0.6
UNKNOWN_WEIGHT = 0.75
K1 = 1.2
B = 0.75

# Colloquial phrasings → the knowledge base's words, applied to the text before segmentation.
REWRITES: tuple[tuple[str, str], ...] = (
    ("医保卡", "社保卡"), ("新农合", "医保"), ("合作医疗", "医保"), ("医疗保险", "医保"),
    ("退休金", "养老金"), ("养老钱", "养老金"), ("电瓶车", "电动车"), ("扯证", "结婚登记"),
    ("领证", "结婚登记"), ("结婚证", "结婚登记"), ("掉了", "丢了"), ("弄丢", "丢了"),
    ("几号", "时间"), ("什么时候", "时间"), ("哪一天", "时间"), ("几点", "时间"),
    ("种田补贴", "种粮补贴"), ("刷脸", "认证"), ("年审", "认证"), ("八十岁", "80岁"),
    ("长寿补贴", "高龄补贴"), ("盖房子", "建房"), ("起房子", "建房"), ("做房子", "建房"),
    ("上户口", "落户"), ("报户口", "落户"), ("上户", "落户"), ("政务服务中心", "便民服务中心"),
    ("办事大厅", "便民服务中心"), ("退伍军人", "退役军人"), ("无息贷款", "创业贷款"),
    ("慢病卡", "慢特病"), ("慢性病", "慢特病"), ("外省", "异地"), ("外地", "异地"),
)

# Synonyms after segmentation: every word on the left reads as the one on the right.
SYNONYMS: dict[str, str] = {
    "补助": "补贴", "津贴": "补贴", "补助金": "补贴", "报账": "报销", "交钱": "缴费", "缴": "缴费",
    "交": "缴费", "缴纳": "缴费", "交费": "缴费", "小孩": "孩子", "宝宝": "孩子", "新生儿": "孩子",
    "小孩子": "孩子", "娃": "孩子", "挂失": "补办", "补": "补办", "补领": "补办", "补卡": "补办",
    "换领": "换证", "换": "换证", "到期": "换证", "过期": "换证", "牌照": "上牌", "牌": "上牌",
    "资格": "认证", "验证": "认证", "核验": "认证", "老年人": "老人", "老人家": "老人",
    "爷爷": "老人", "奶奶": "老人", "外公": "老人", "外婆": "老人", "贷": "贷款",
    "住院费": "住院", "医药费": "报销", "看病": "就医", "就诊": "就医", "打工": "异地",
    "残疾人": "残疾", "残疾证": "残疾", "种粮": "耕地", "地力": "耕地", "上班": "办公",
}

STOPWORDS = frozenset("""
的 了 吗 呢 啊 呀 吧 哦 嗯 么 嘛 哈 啦 喔 咧 罗 撒 噻 哇
我 我们 你 你们 您 他 她 它 他们 咱 咱们 俺 自己 人家 大家
请问 请 问 问下 问一下 一下 想 想问 想要 要 需要 能 能不能 可以 可不可以 会 该 应该 得 用
怎么 怎么样 怎样 如何 怎么办 咋 咋办 啥 什么 哪 哪里 哪儿 哪个 在哪 在哪里 去哪 去哪里 找谁 谁
是 有 没 没有 不 也 都 就 还 还是 又 再 才 已经 刚 刚刚 现在 今年 去年 明年 这个 那个 这 那 个 些 点
在 到 去 来 给 和 跟 与 及 或 或者 从 对 把 被 让 向 为 为了 由 办 弄 搞 做 整 走 拿 带
家 我家 家里 我的 你好 您好 谢谢 麻烦 领导 同志 老师 师傅 一个 一下子 多久 所以 但是 如果 听说
""".split())

# What a report of a problem sounds like: the bot never answers these (a person must act).
PROBLEM = re.compile(
    "坏了|坏掉|不亮|漏水|漏雨|爆了|堵了|堵塞|停水|停电|塌|断了|太吵|吵得|吵死|扰民|噪音|纠纷|矛盾|"
    "吵起来|吵架|打架|打人|占了|占用|霸占|拖欠|欠薪|不给|没发|没到账|没人管|没人接|没人理|不公平|"
    "不公正|投诉|举报|申诉|扣了|克扣|冒领|被拒|拒了|乱收费|危险|倒垃圾|电鱼|没人清|滚下来|快倒|"
    "着火了没人|臭死|污水|冒出来|挡了|挡住|不砍|争议|闹矛盾|欺负|威胁|被偷|被盗|被骗|诈骗|倒了|"
    "怎么没有|怎么还没|为什么没|为啥没|咋没|怎么不给|凭什么")

# Words jieba's general dictionary splits or does not know; frequency high enough to win.
DOMAIN_WORDS = (
    "医保", "社保卡", "养老金", "养老保险", "资格认证", "高龄补贴", "高龄津贴", "低保", "低保户",
    "残疾证", "两项补贴", "护理补贴", "耕地地力保护补贴", "种粮补贴", "一卡通", "居住证明", "户籍证明",
    "无犯罪记录证明", "身份证", "临时身份证", "出生医学证明", "落户", "结婚登记", "危房改造",
    "临时救助", "便民服务中心", "宅基地", "建房", "上牌", "电动车", "退役军人", "优待证",
    "创业贷款", "创业担保贷款", "异地就医", "备案", "慢特病", "报销比例", "缴费档次", "城乡居民",
)

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_WORDISH = re.compile(r"[\u3400-\u9fff0-9a-z]")

log = logging.getLogger(__name__)
_tokenizer = None
_tokenizer_lock = threading.Lock()


def tokenizer():
    """jieba's tokenizer with the domain words: built once per process, on first use."""
    global _tokenizer
    if _tokenizer is None:
        with _tokenizer_lock:
            if _tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tk = jieba.Tokenizer()
                tk.initialize()
                for word in DOMAIN_WORDS:
                    tk.add_word(word, freq=200000)
                _tokenizer = tk
    return _tokenizer


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").lower()
    for old, new in REWRITES:
        if old in text:
            text = text.replace(old, new)
    return text


def terms(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The informative words of a text (jieba's precise mode), each with the shorter dictionary
    words inside it ("无犯罪记录证明" → 犯罪, 记录, 证明), all mapped to their synonyms."""
    tk = tokenizer()
    out = []
    for raw in tk.lcut(normalise(text)):
        w = raw.strip()
        if not w or not _WORDISH.search(w) or w in STOPWORDS:
            continue
        subs = []
        if len(w) > 2:
            for n in (2, 3):
                for i in range(len(w) - n + 1):
                    gram = w[i:i + n]
                    if gram != w and tk.FREQ.get(gram) and gram not in STOPWORDS:
                        subs.append(SYNONYMS.get(gram, gram))
        out.append((SYNONYMS.get(w, w), tuple(dict.fromkeys(subs))))
    return out


def words(text: str) -> list[str]:
    """Every word a text is indexed under: its terms and the words inside them."""
    out = []
    for w, subs in terms(text):
        out.append(w)
        out.extend(subs)
    return out


def bigrams(text: str) -> list[str]:
    chars = "".join(c for c in _PUNCT.sub("", normalise(text)) if c not in STOPWORDS)
    return [chars[i:i + 2] for i in range(len(chars) - 1)] or ([chars] if chars else [])


def is_problem(text: str) -> bool:
    return bool(PROBLEM.search(normalise(text)))


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    score: float        # BM25
    coverage: float
    bigram: float
    confidence: float


@dataclass(frozen=True)
class Match:
    """The matcher's decision: ``entry_id`` is set only when it is confident enough to answer."""
    entry_id: str | None
    confidence: float
    margin: float
    best: Candidate | None
    reason: str

    @property
    def confident(self) -> bool:
        return self.entry_id is not None


class Matcher:
    """An index over one township's entries. Immutable: rebuild it when the entries change."""

    def __init__(self, entries: Iterable[dict], *, threshold: float = THRESHOLD, margin: float = MARGIN):
        self.threshold = threshold
        self.margin = margin
        self.ids: list[str] = []
        docs: list[list[str]] = []
        grams: list[Counter] = []
        for e in entries:
            text_words = words(e["question"])
            for kw in e.get("keywords") or ():
                text_words += words(kw)
            if e.get("category"):
                text_words += words(e["category"])
            self.ids.append(e["_id"])
            docs.append(text_words)
            g = Counter(bigrams(e["question"]))
            for kw in e.get("keywords") or ():
                g.update(bigrams(kw))
            grams.append(g)
        self.n = len(docs)
        self.tf = [Counter(d) for d in docs]
        self.lengths = [len(d) for d in docs]
        self.avgdl = (sum(self.lengths) / self.n) if self.n else 1.0
        df = Counter(w for d in docs for w in set(d))
        self.idf = {w: math.log(1 + (self.n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        self.unknown_idf = UNKNOWN_WEIGHT * math.log(1 + (self.n - 1 + 0.5) / 1.5) if self.n else 1.0
        gdf = Counter(g for d in grams for g in d)
        self.gidf = {g: math.log(1 + self.n / c) for g, c in gdf.items()}
        self.gvecs = [self._gvec(g) for g in grams]

    def _gvec(self, grams: Counter) -> dict[str, float]:
        vec = {g: (1 + math.log(c)) * self.gidf.get(g, math.log(1 + self.n)) for g, c in grams.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {g: v / norm for g, v in vec.items()}

    def _bm25(self, q: list[str], i: int) -> float:
        tf, dl = self.tf[i], self.lengths[i]
        score = 0.0
        for w in q:
            f = tf.get(w)
            if f:
                score += self.idf[w] * f * (K1 + 1) / (f + K1 * (1 - B + B * dl / self.avgdl))
        return score

    def _weight(self, term: str, subs: tuple[str, ...]) -> float:
        if term in self.idf:
            return self.idf[term]
        known = [self.idf[s] for s in subs if s in self.idf]
        return max(known) if known else self.unknown_idf

    def rank(self, text: str, top: int = 3) -> list[Candidate]:
        if not self.n:
            return []
        query_terms = list(dict.fromkeys(terms(text)))  # a repeated word is not more evidence
        if not query_terms:
            return []
        q = list(dict.fromkeys(w for t, subs in query_terms for w in (t, *subs)))
        weights = [self._weight(t, subs) for t, subs in query_terms]
        total = sum(weights)
        qvec = self._gvec(Counter(bigrams(text)))
        out = []
        for i in range(self.n):
            score = self._bm25(q, i)
            if score <= 0:
                continue
            doc = self.tf[i]
            covered = 0.0
            for (term, subs), weight in zip(query_terms, weights):
                if term in doc:
                    covered += weight
                elif subs:
                    covered += weight * sum(1 for s in subs if s in doc) / len(subs)
            coverage = covered / total if total else 0.0
            cos = sum(v * self.gvecs[i].get(g, 0.0) for g, v in qvec.items())
            confidence = COVERAGE_SHARE * coverage + (1 - COVERAGE_SHARE) * cos
            out.append(Candidate(self.ids[i], score, coverage, cos, confidence))
        out.sort(key=lambda c: (c.confidence, c.score), reverse=True)
        return out[:top]

    def match(self, text: str) -> Match:
        if is_problem(text):
            return Match(None, 0.0, 0.0, None, "problem")
        ranked = self.rank(text, top=2)
        if not ranked:
            return Match(None, 0.0, 0.0, None, "no_match")
        best = ranked[0]
        runner_up = ranked[1].confidence if len(ranked) > 1 else 0.0
        margin = best.confidence - runner_up
        if best.confidence < self.threshold:
            return Match(None, best.confidence, margin, best, "below_threshold")
        if margin < self.margin:
            return Match(None, best.confidence, margin, best, "ambiguous")
        return Match(best.entry_id, best.confidence, margin, best, "confident")
