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
    """
    rng = random.Random(seed)
    first_joined = date(2010, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_HEADER)
        for i in range(count):
            if i % 10 < 7:
                name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
                locale = "zh-CN"
                local = f"user{i}"
            else:
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                name = f"{first} {last}"
                locale = "en"
                local = f"{first.lower()}.{last.lower()}.{i}"
            products = rng.sample(_PRODUCTS, rng.randint(1, 3))
            writer.writerow(
                (
                    f"C{i:08d}",
                    name,
                    f"{local}@{_DOMAINS[i % len(_DOMAINS)]}",
                    f"+86138{i:08d}",
                    "CN",
                    locale,
                    "Asia/Shanghai",
                    "yes",
                    "yes" if i % 2 else "no",
                    rng.randint(18, 85),
                    rng.choice(_CITIES),
                    "active",
                    ";".join(products),
                    (first_joined + timedelta(days=rng.randint(0, 5000))).isoformat(),
                    "true" if i % 7 == 0 else "false",
                    f"{rng.uniform(0, 500_000):.2f}",
                )
            )


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
