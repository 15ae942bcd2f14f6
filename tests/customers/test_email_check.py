"""The email fast path gives exactly email-validator's verdict and normal form (`validate_email`, no DNS) on
varied and tricky addresses."""

from __future__ import annotations

import itertools

import pytest

from outreach.customers import email_check
from outreach.customers.email_check import checked_email, full_check

LOCALS = [
    "user", "User.Name", "a", "first.last+tag", "x_y-z", "Postmaster", "ABUSE", "info", "o'brien", "a..b", ".a",
    "a.", "", "quoted\"x", '"quoted local"', "张三", "ü", "a b", "x" * 64, "x" * 65, "user@x", "a!#$%&*=?^`{|}~",
    "noreply", "ＦＵＬＬ", "tab\tin",
]  # fmt: skip
DOMAINS = [
    "example.com", "Example.COM", "mail.example.co.uk", "例子.中国", "xn--fsqu00a.xn--fiqs8s", "localhost", "com",
    "-bad.example", "bad-.example", "exa_mple.com", "[127.0.0.1]", "[IPv6:::1]", "example..com", "example.com.",
    "a" * 63 + ".com", "a" * 64 + ".com", ".".join(["abcdefghij"] * 25) + ".com", "EXAMPLE.invalid", "example.test",
    "123.com", "bücher.de", "ex ample.com", "",
]  # fmt: skip
EXTRA = ["plainaddress", "@example.com", "user@", "a@b@c.com", "Name <user@example.com>", "user@example.com ",
         " user@example.com", "USER@EXAMPLE.COM", "x" * 250 + "@example.com"]  # fmt: skip


def test_the_fast_path_agrees_with_email_validator() -> None:
    addresses = [f"{local}@{domain}" for local, domain in itertools.product(LOCALS, DOMAINS)] + EXTRA
    for raw in addresses:
        assert checked_email(raw) == full_check(raw), raw


def test_plain_addresses_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(email_check, "full_check", lambda raw: asked.append(raw) or full_check(raw))
    for raw in ["user1@mail.example.com", "First.Last+tag@Example.COM", "Postmaster@example.cn"]:
        assert email_check.checked_email(raw)[1] is None
    assert asked == []
    assert email_check.checked_email("张三@例子.中国")[1] is None
    assert asked == ["张三@例子.中国"]
