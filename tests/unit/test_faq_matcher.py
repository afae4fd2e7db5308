"""The instant-answer matcher: precision on a labelled set, problems never answered, the dictionary loaded once
(pure)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from services.intake import faq
from services.intake.kb_demo import demo_kb_csv
from services.intake.knowledge import read_sheet


LABELLED = Path(__file__).parents[1] / "data" / "faq_labelled.tsv"


def labelled() -> list[tuple[str, str, str]]:
    rows = []
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("question\t"):
            continue
        question, expected, kind = line.split("\t")
        rows.append((question, expected, kind))
    return rows


def demo_entries() -> list[dict]:
    return [{**row, "_id": row["code"]} for row in read_sheet(demo_kb_csv(), "demo-kb.csv")]


def test_matcher_precision_on_the_labelled_set(capsys):
    rows = labelled()
    kinds = Counter(kind for _, _, kind in rows)
    assert len(rows) >= 100 and sum(1 for _, e, _ in rows if e == "none") >= 30
    entries = demo_entries()
    codes = {e["code"] for e in entries}
    assert {e for _, e, _ in rows if e != "none"} <= codes, "every label names an entry of the demo knowledge base"

    matcher = faq.Matcher(entries)
    answered, correct, wrong_by_kind = 0, 0, Counter()
    wrong = []
    for question, expected, kind in rows:
        decision = matcher.match(question)
        if decision.confident:
            answered += 1
            if decision.entry_id == expected:
                correct += 1
            else:
                wrong_by_kind[kind] += 1
                wrong.append((question, expected, decision.entry_id, round(decision.confidence, 2)))
    answerable = sum(1 for _, e, _ in rows if e != "none")
    precision = correct / answered
    with capsys.disabled():
        print(f"\n[faq matcher] {len(rows)} labelled questions ({answerable} answerable, "
              f"{len(rows) - answerable} not: {dict((k, v) for k, v in kinds.items() if k != 'answerable')}); "
              f"threshold {faq.THRESHOLD}, margin {faq.MARGIN}")
        print(f"[faq matcher] answered instantly: {answered}/{len(rows)} = {answered / len(rows):.1%} of all, "
              f"correct {correct}/{answerable} = {correct / answerable:.1%} of answerable; "
              f"precision of confident answers {correct}/{answered} = {precision:.1%}")
        print(f"[faq matcher] wrong answers by kind: {dict(wrong_by_kind) or 'none'} {wrong}")
    assert precision >= 0.9
    assert correct / answerable >= 0.6, "the bot should still answer most common questions"
    assert not wrong_by_kind["problem"] and not wrong_by_kind["dispute"], "a real problem must reach a person"


def test_problem_reports_are_never_answered_even_with_a_policy_word():
    matcher = faq.Matcher(demo_entries())
    for text in ("低保评得不公平，我要投诉", "门口路灯坏了", "养老金两个月没到账了", "邻居占了我家宅基地"):
        decision = matcher.match(text)
        assert not decision.confident and (decision.reason == "problem" or decision.confidence < faq.THRESHOLD), text


def test_the_dictionary_is_loaded_once_per_process():
    first = faq.tokenizer()
    assert faq.tokenizer() is first
    assert "养老金" in faq.words("养老金每月几号到账")
