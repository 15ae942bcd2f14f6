"""Per-language content: one block per language instead of `{% if locale %}` in every field; the customer's
locale picks it (zh-CN -> zh_CN, then zh), others get the fallback; mistakes are PATH:LINE:COL errors."""

from __future__ import annotations

import textwrap

import pytest

from outreach.campaigns.content_locales import choose, normalize
from tests.workdir import Workdir

CUSTOMERS = """
    id,name,email,phone,country,locale,card_last4
    K001,王芳,wang@example.cn,13800138001,CN,zh-CN,4821
    K002,Bob,bob@example.com,,GB,en_GB,1177
    K003,Pierre,pierre@example.fr,,FR,fr,9090
    K004,Lin,,13800138004,CN,zh_TW,5555
"""

REMINDER = """
    id: card-due
    name: Card payment due
    purpose: service
    default_locale: zh
    steps:
      - id: remind
        channel: email
        fallback: sms
        content:
          email:
            zh: {subject: "{{ name }},您的信用卡还款日将至", text: "尾号{{ card_last4 }}的卡片3天后到期。"}
            en: {subject: "{{ name }}, your card payment is due", text: "Card {{ card_last4 }} is due in 3 days."}
          sms:
            zh: "【示例银行】尾号{{ card_last4 }}的信用卡3天后到期。"
            en: "Example Bank: card ending {{ card_last4 }} is due in 3 days."
"""


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("zh-CN", "zh"), ("zh_CN", "zh_CN"), ("en_GB", "en"), ("EN-gb", "en"), ("fr", "zh"), (None, "zh"), ("x", "zh")],
)
def test_a_customer_gets_the_closest_language_written(locale: str | None, expected: str) -> None:
    written = ["zh", "en", "zh_CN"] if expected == "zh_CN" else ["zh", "en"]
    assert choose(written, locale, "zh") == expected


def test_tags_compare_in_one_spelling() -> None:
    assert normalize("zh-cn") == normalize("ZH_CN") == "zh_CN"
    assert normalize("zh-hant-tw") == "zh_Hant_TW"


def test_each_customer_is_sent_their_own_language(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("due.yaml", REMINDER)
    assert "ok  due.yaml" in desk.ok("campaigns", "validate", "due.yaml").stdout
    desk.ok("campaigns", "run", "due.yaml", "--wait")
    subjects = {m["message"]["To"]: m["message"]["Subject"] for m in desk.outbox("email")}
    assert subjects == {
        "wang@example.cn": "王芳,您的信用卡还款日将至",
        "bob@example.com": "Bob, your card payment is due",
        "pierre@example.fr": "Pierre,您的信用卡还款日将至",  # no French written: the default, zh
    }
    [sms] = desk.outbox("sms")
    assert sms["to"] == "+8613800138004" and sms["body"] == "【示例银行】尾号5555的信用卡3天后到期。"


@pytest.mark.parametrize(
    ("change", "line", "col", "message"),
    [
        # a default_locale no block has
        (("default_locale: zh", "default_locale: fr"), 11, 9, "email has no fr text (zh, en written)"),
        # a typo inside one language's email
        (
            ('en: {subject: "{{ name }}, your', 'en: {subjct: "{{ name }}, your'),
            12,
            14,
            "unknown key 'subjct'; did you mean 'subject'?",
        ),
        # a key that is no language
        (
            ('      sms:\n        zh: "', '      sms:\n        zz_top: "'),
            14,
            9,
            "steps[0].content.sms: 'zz_top' is not a language tag",
        ),
        # a template error inside one translation is placed in its line
        (('text: "Card {{ card_last4 }}', 'text: "Card {{ card_last4 }'), 12, 0, "unexpected '}'"),
    ],
)
def test_mistakes_in_translations_are_pointed_at(
    desk: Workdir, change: tuple[str, str], line: int, col: int, message: str
) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    text = textwrap.dedent(REMINDER).lstrip()
    assert change[0] in text
    desk.write("due.yaml", text.replace(change[0], change[1]))
    done = desk.run("campaigns", "validate", "due.yaml")
    assert done.returncode == 2, done.stdout
    [problem] = [p for p in done.stderr.splitlines() if message in p]
    where = problem.split(": ", 1)[0].split(":")
    assert where[:2] == ["due.yaml", str(line)], problem
    if col:
        assert where[2] == str(col), problem


def test_the_fallback_translation_formats_dates_in_its_own_language(desk: Workdir) -> None:
    desk.write(
        "customers.csv",
        """
        id,name,email,locale,card_due_date,card_balance
        K1,王芳,wang@example.cn,zh-CN,2026-12-07,107.5
        K2,Pierre,pierre@example.fr,fr,2026-12-07,107.5
        K3,Bob,bob@example.com,en,2026-12-07,107.5
        """,
    )
    desk.ok("customers", "import", "customers.csv")
    desk.write(
        "due.yaml",
        """
        id: due
        name: Due
        purpose: service
        default_locale: zh
        steps:
          - id: remind
            channel: email
            content:
              email:
                zh: {subject: "{{ card_due_date | date }}还款{{ card_balance | money }}", text: "x"}
                en: {subject: "Due {{ card_due_date | date }}: {{ card_balance | money }}", text: "x"}
        """,
    )
    desk.ok("campaigns", "run", "due.yaml", "--wait")
    subjects = {m["message"]["To"]: m["message"]["Subject"] for m in desk.outbox("email")}
    assert subjects == {
        "wang@example.cn": "2026年12月7日还款¥107.50",
        "pierre@example.fr": "2026年12月7日还款¥107.50",  # not "Dec 7, 2026" inside Chinese
        "bob@example.com": "Due Dec 7, 2026: CN¥107.50",
    }
