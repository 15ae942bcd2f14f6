"""`customers import`: typed, normalised, all-or-nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.customers import profiles
from outreach.customers.importer import import_customers
from outreach.customers.profiles import set_consent
from outreach.store.schema import consents, customers, events

GOOD_CSV = """id,name,phone,country,email,locale,timezone,consent_sms,consent_email,age,products,joined,branch,vip
c1,张三,13800138000,CN,Zhang@Example.com,zh-CN,Asia/Shanghai,yes,,34,savings;loan,2020-01-05,0123,true
c2,Bob Lee,(415) 555-0100,US,bob@example.com,en,America/New_York,no,yes,51,loan,2021-03-01,0456,false
c3,李四,+86 139 0013 9000,,li@example.cn,zh-CN,,,,27,,2022-12-31,0789,false
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_csv_import_normalises_and_types(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url, list_columns=("products",))
    summary = import_customers(engine, write(tmp_path, "c.csv", GOOD_CSV), settings)
    assert (summary.created, summary.updated) == (3, 0)
    assert summary.new_attributes == {
        "age": "number",
        "products": "list",
        "joined": "date",
        "branch": "string",
        "vip": "boolean",
    }
    with engine.connect() as conn:
        zhang = profiles.get_customer(conn, "c1")
        bob = profiles.get_customer(conn, "c2")
        li = profiles.get_customer(conn, "c3")
        assert zhang is not None and bob is not None and li is not None
        assert zhang["phone"] == "+8613800138000"
        assert zhang["email"] == "Zhang@example.com"  # the domain is case-insensitive, the local part is not
        assert bob["phone"] == "+14155550100"
        assert li["phone"] == "+8613900139000"
        assert zhang["attributes"] == {
            "age": 34,
            "products": ["savings", "loan"],
            "joined": "2020-01-05",
            "branch": "0123",
            "vip": True,
        }
        assert "products" not in li["attributes"]  # an empty cell is no value, not an empty string
        assert profiles.consent_map(conn, ["c1", "c2", "c3"], ["sms", "email"], "marketing") == {
            ("c1", "sms"): "granted",
            ("c2", "sms"): "revoked",
            ("c2", "email"): "granted",
        }
        kinds = [e["kind"] for e in profiles.timeline(conn, "c2")]
        assert sorted(kinds) == ["consent.granted", "consent.revoked", "profile.created"]


def test_bad_rows_are_all_named_and_nothing_is_written(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url)
    import_customers(engine, write(tmp_path, "first.csv", "id,name\nkeep,Kept\n"), settings)
    bad = (
        "id,name,phone,country,email,consent_sms,timezone\n"
        "ok1,Fine,+8613800138000,,,yes,\n"
        "b1,Bad Email,,,not-an-email,,\n"
        ",No Id,,,,,\n"
        "b3,Bad Phone,12345,CN,,,\n"
        "b4,Bad Consent,,,,maybe,\n"
        "ok1,Duplicate,,,,,\n"
        "b6,Bad Zone,,,,,Mars/Olympus\n"
    )
    with pytest.raises(InputError) as caught:
        import_customers(engine, write(tmp_path, "bad.csv", bad), settings)
    lines = [(p.line, p.message) for p in caught.value.problems]
    assert [line for line, _ in lines] == [3, 4, 5, 6, 7, 8]
    text = str(caught.value)
    assert f"{tmp_path / 'bad.csv'}:3: email 'not-an-email'" in text
    assert "id 'ok1' already appears on line 2" in text
    assert "Mars/Olympus" in text
    assert count(engine, customers) == 1  # only the earlier import
    assert count(engine, consents) == 0


def test_invalid_contacts_can_be_kept_marked_invalid(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url)
    path = write(tmp_path, "c.csv", "id,phone,email\nx1,12345,broken@\n")
    summary = import_customers(engine, path, settings, allow_invalid_contacts=True)
    assert len(summary.invalid_contacts) == 2
    with engine.connect() as conn:
        row = profiles.get_customer(conn, "x1")
    assert row is not None
    assert row["phone"] == "12345" and row["phone_invalid"]
    assert row["email"] == "broken@" and row["email_invalid"]


def test_jsonl_import_and_upsert_keeps_unmentioned_values(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url)
    first = [
        {"id": "j1", "name": "Amy", "email": "amy@example.com", "score": 7, "tags": ["a", "b"], "seen": "2026-01-02"},
        {"id": "j2", "name": "Ben", "phone": "+447911123456", "score": 9.5},
    ]
    path = write(tmp_path, "c.jsonl", "\n".join(json.dumps(r) for r in first) + "\n")
    import_customers(engine, path, settings)
    second = write(tmp_path, "again.jsonl", json.dumps({"id": "j1", "score": 8, "city": "Beijing"}) + "\n")
    summary = import_customers(engine, second, settings)
    assert (summary.created, summary.updated) == (0, 1)
    with engine.connect() as conn:
        amy = profiles.get_customer(conn, "j1")
        catalog = profiles.attribute_catalog(conn)
    assert amy is not None
    assert amy["email"] == "amy@example.com" and amy["name"] == "Amy"
    assert amy["attributes"] == {"score": 8, "tags": ["a", "b"], "seen": "2026-01-02", "city": "Beijing"}
    assert catalog == {"score": "number", "tags": "list", "seen": "date", "city": "string"}


def test_jsonl_type_conflicts_and_bad_lines(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url)
    import_customers(engine, write(tmp_path, "a.jsonl", '{"id": "k1", "age": 30}\n'), settings)
    text = '{"id": "k2", "age": "thirty"}\n{"id": "k3", "nested": {"x": 1}}\nnot json\n[1, 2]\n'
    with pytest.raises(InputError) as caught:
        import_customers(engine, write(tmp_path, "b.jsonl", text), settings)
    messages = {p.line: p.message for p in caught.value.problems}
    assert "earlier imports made this a number attribute" in messages[1]
    assert "object values are not supported" in messages[2]
    assert messages[3].startswith("not JSON")
    assert "expected a JSON object" in messages[4]
    assert count(engine, customers) == 1


def test_import_never_overrides_a_customers_own_opt_out(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url)
    path = write(tmp_path, "c.csv", "id,phone,consent_sms\np1,+8613800138000,yes\n")
    import_customers(engine, path, settings)
    with engine.begin() as conn:
        set_consent(conn, "p1", "sms", "marketing", "revoked", "sms:keyword:STOP")
    summary = import_customers(engine, path, settings)
    assert summary.consents_kept_revoked == 1
    with engine.connect() as conn:
        assert profiles.consent_map(conn, ["p1"], ["sms"], "marketing") == {("p1", "sms"): "revoked"}
        kinds = [e["kind"] for e in profiles.timeline(conn, "p1")]
    assert kinds.count("consent.granted") == 1 and kinds.count("consent.revoked") == 1
    assert count(engine, events) == 3


def test_social_addresses_are_imported_like_the_rest(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url)
    good = write(
        tmp_path,
        "social.csv",
        "id,name,country,whatsapp,wechat_openid,consent_whatsapp,consent_wechat\n"
        "s1,Ann,US,(415) 555-0100,oAbCdEfGhIjK_123,yes,yes\n",
    )
    import_customers(engine, good, settings)
    with engine.connect() as conn:
        row = conn.execute(sa.select(customers).where(customers.c.id == "s1")).mappings().one()
        granted = {c["channel"] for c in profiles.customer_consents(conn, "s1") if c["status"] == "granted"}
    assert (row["whatsapp"], row["wechat_openid"]) == ("+14155550100", "oAbCdEfGhIjK_123")
    assert granted == {"whatsapp", "wechat"}
    bad = write(tmp_path, "bad.csv", "id,whatsapp,wechat_openid\ns2,12,no spaces allowed\n")
    with pytest.raises(InputError) as caught:
        import_customers(engine, bad, settings)
    messages = [str(p) for p in caught.value.problems]
    assert any("whatsapp '12'" in m for m in messages), messages
    assert any("wechat_openid 'no spaces allowed' is not a WeChat OpenID" in m for m in messages), messages


def test_a_long_reason_for_an_invalid_address_fits_its_column(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    settings = make_settings(store_url)
    bad = "id,name,email\nK1,Yang,yang.lei@example\n"
    summary = import_customers(engine, write(tmp_path, "c.csv", bad), settings, allow_invalid_contacts=True)
    assert "It should have a period." in summary.invalid_contacts[0].message  # the whole reason is reported
    with engine.connect() as conn:
        stored = conn.execute(sa.select(customers.c.email_invalid).where(customers.c.id == "K1")).scalar_one()
    assert stored.startswith("email 'yang.lei@example': The part after the @-sign is not valid")
    assert len(stored) <= 80
