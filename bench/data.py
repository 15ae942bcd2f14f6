"""What the benchmark feeds the engine: a customers CSV of any size and an email-only marketing campaign."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

CAMPAIGN_ID = "bench-spring-offer"
STEP_ID = "offer"

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超")
_FIRST = ("Alice", "Ben", "Chloe", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack", "Karen", "Leo")
_LAST = ("Smith", "Chan", "Wong", "Brown", "Taylor", "Lee", "Martin", "Clark", "Lewis", "Walker")
_CITIES = ("Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Nanjing", "Wuhan")
_PRODUCTS = ("savings", "credit", "mortgage", "fund", "insurance", "forex")
_DOMAINS = ("mail.example.com", "example.cn", "inbox.example.net", "bank-customers.example.org")
_JOINED_DAYS = 5000  # customers joined on one of the days from 2010-01-01 to 5,000 days later
_BLOCK = 10_000  # rows written at a time
_HEADER = (
    "id",
    "name",
    "email",
    "phone",
    "country",
    "locale",
    "timezone",
    "consent_email",
    "consent_sms",
    "age",
    "city",
    "status",
    "products",
    "joined",
    "vip",
    "balance",
)


def write_customers(path: Path, count: int, seed: int = 2026) -> None:
    """`count` customers with valid, unique emails and phones, all consenting to marketing email.

    Seven in ten have Chinese names and locale zh-CN, the rest Latin names and locale en. `products` is a
    list attribute (`a;b`), so the settings must name it in `list_columns`.

    The random draws come in the same order as they always have (same seed, same file); the rows are built
    with the generator's methods and the join dates looked up in a table, and written a block at a time.
    """
    rng = random.Random(seed)
    choice, sample, randint, uniform = rng.choice, rng.sample, rng.randint, rng.uniform
    first_joined = date(2010, 1, 1)
    joined = [(first_joined + timedelta(days=d)).isoformat() for d in range(_JOINED_DAYS + 1)]
    domains = _DOMAINS
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_HEADER)
        block: list[tuple[object, ...]] = []
        for i in range(count):
            if i % 10 < 7:
                name = choice(_SURNAMES) + choice(_GIVEN)
                locale = "zh-CN"
                local = f"user{i}"
            else:
                first, last = choice(_FIRST), choice(_LAST)
                name = f"{first} {last}"
                locale = "en"
                local = f"{first.lower()}.{last.lower()}.{i}"
            products = sample(_PRODUCTS, randint(1, 3))
            block.append(
                (
                    f"C{i:08d}",
                    name,
                    f"{local}@{domains[i % len(domains)]}",
                    f"+86138{i:08d}",
                    "CN",
                    locale,
                    "Asia/Shanghai",
                    "yes",
                    "yes" if i % 2 else "no",
                    randint(18, 85),
                    choice(_CITIES),
                    "active",
                    ";".join(products),
                    joined[randint(0, _JOINED_DAYS)],
                    "true" if i % 7 == 0 else "false",
                    f"{uniform(0, 500_000):.2f}",
                )
            )
            if len(block) >= _BLOCK:
                writer.writerows(block)
                block.clear()
        writer.writerows(block)


def campaign_yaml() -> str:
    """An email-only marketing campaign whose subject, text and HTML use the customer's fields."""
    return f"""\
id: {CAMPAIGN_ID}
name: Benchmark spring wealth offer
purpose: marketing
segment: "status == 'active' and age >= 18"
steps:
  - id: {STEP_ID}
    channel: email
    content:
      email:
        subject: "{{{{ name }}}},您的春季专属理财礼遇 / your spring offer in {{{{ city }}}}"
        text: |
          尊敬的{{{{ name }}}}:

          感谢您自{{{{ joined }}}}以来对我行的信任。作为我行{{{{ city }}}}分行的客户,您可在本月享受
          专属理财产品的优惠利率。您目前持有的产品:{{{{ products | join('、') }}}}。

          Dear {{{{ name }}}}, thank you for banking with us since {{{{ joined }}}}. This month our
          {{{{ city }}}} branch offers you a preferential rate on selected wealth products.
        html: |
          <html><body>
          <h1>尊敬的{{{{ name }}}}</h1>
          <p>感谢您自{{{{ joined }}}}以来对我行的信任。作为我行<b>{{{{ city }}}}</b>分行的客户,
          您可在本月享受专属理财产品的优惠利率。</p>
          <p>您目前持有的产品:{{{{ products | join('、') }}}}</p>
          <p>Dear {{{{ name }}}}, thank you for banking with us since {{{{ joined }}}}. This month our
          {{{{ city }}}} branch offers you a preferential rate on selected wealth products.</p>
          </body></html>
"""
