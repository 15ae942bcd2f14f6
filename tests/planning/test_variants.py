"""A/B variants: the step format and its errors, the stable split of customers, variant content end to end,
and the per-variant report with its confidence interval."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import load_campaign
from outreach.campaigns.model import Variant
from outreach.cli.operations import print_report
from outreach.core.settings import Settings
from outreach.planning.variants import VariantChooser, hash_point
from outreach.reports.campaign_report import campaign_report
from outreach.reports.variant_report import TOO_SMALL, newcombe, wilson
from outreach.store.ledger import Status
from outreach.store.schema import campaign_runs, deliveries
from tests.campaign_files import at, problems, write
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(templates_dir=tmp_path / "templates")


HEAD = "id: ab\nname: Test\npurpose: service\nsteps:\n"

# -- the format --------------------------------------------------------------------------------------------


def test_a_step_with_variants_loads_each_variants_templates(tmp_path: Path, settings: Settings) -> None:
    (settings.templates_dir / "promo").mkdir(parents=True)
    (settings.templates_dir / "promo" / "offer-b.sms.j2").write_text("B {{ name }}", encoding="utf-8")
    for part, suffix in (("subject", "subject"), ("text", "txt")):
        (settings.templates_dir / "promo" / f"offer-b.{suffix}.j2").write_text(f"B {part}", encoding="utf-8")
    path = write(
        tmp_path,
        HEAD
        + """\
  - id: offer
    channel: sms
    fallback: email
    variants:
      - id: a
        weight: 70
        content: {sms: "A {{ name }}", email: {subject: "A", text: "A {{ name }}"}}
      - id: b
        weight: 30.5
        template: promo/offer-b
      - id: c
        content: {sms: "C", email: {subject: "C", text: "C"}}
""",
    )
    loaded = load_campaign(path, settings, None)
    variants = loaded.campaign.steps[0].variants
    assert variants is not None
    assert [(v.id, v.weight) for v in variants] == [("a", 70), ("b", 30.5), ("c", 1)]
    arms = loaded.variant_templates["offer"]
    assert list(arms) == ["a", "b", "c"]
    assert {channel: list(t.parts) for channel, t in arms["b"].items()} == {
        "sms": ["body"],
        "email": ["subject", "text"],
    }
    assert arms["b"]["sms"].parts["body"].text == "B {{ name }}"
    assert loaded.templates["offer"] is arms["a"]  # what code that does not pick a variant sends: the control


def test_variant_errors_point_at_their_place(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - id: both
    channel: sms
    content: {sms: "x"}
    variants:
      - {id: a, content: {sms: "x"}}
      - {id: b, content: {sms: "y"}}
  - id: one
    channel: sms
    variants:
      - {id: a, content: {sms: "x"}}
  - id: fields
    channel: sms
    variants:
      - {id: Big_A, weight: -1, content: {sms: "x"}}
      - {id: b, weight: "70%", content: {sms: "x"}}
      - {id: c, weight: 0, content: {sms: "x"}, template: a/b}
      - {id: d}
  - id: twice
    channel: sms
    variants:
      - {id: a, content: {sms: "x"}}
      - {id: b, content: {sms: "y"}}
      - {id: a, content: {sms: "z"}}
""",
    )
    dup = at(path, "{id: a", 4)
    positive = "should be a positive number (the variant's share, like 70)"
    assert problems(path, settings) == [
        (*at(path, "id: both"), "steps[0]: a step has `variants` (each with its own content) or "
         "`content`/`template`, not both"),
        (*at(path, "- {id: a", 2), "steps[1].variants: an A/B test needs at least two variants (one message is "
         "`content` or `template`)"),
        (*at(path, "Big_A"), "steps[2].variants[0].id: 'Big_A' is not valid: variant ids are lowercase letters, "
         "digits and -, starting with a letter or digit (at most 32)"),
        (*at(path, "-1"), f"steps[2].variants[0].weight: {positive}, not -1"),
        (*at(path, '"70%"'), f"steps[2].variants[1].weight: {positive}, not '70%'"),
        (*at(path, "0, content"), f"steps[2].variants[2].weight: {positive}, not 0"),
        (*at(path, "{id: d}"), "steps[2].variants[3]: a variant needs `content` (inline templates) or `template` "
         "(files)"),
        (dup[0], dup[1] + 5, f"variant id 'a' is already used on line {at(path, '{id: a', 3)[0]}"),
    ]  # fmt: skip


def test_each_variant_needs_content_for_every_channel_the_step_may_use(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
  - id: offer
    channel: sms
    fallback: email
    variants:
      - id: a
        content: {sms: "A", email: {subject: "A", text: "A"}}
      - id: b
        content:
          sms: "B {{ nope }}"
      - id: c
        template: promo/c
""",
    )
    root = settings.templates_dir
    assert problems(path, settings, {"name": "string"}) == [
        (*at(path, "content:", 2), "step 'offer' variant 'b' falls back to email but its content has no email "
         "template"),
        (*at(path, "nope"), "no customer has a field or attribute named 'nope'"),
        (*at(path, "promo/c"), f"email needs template files that do not exist: {root}/promo/c.subject.j2, "
         f"{root}/promo/c.txt.j2"),
        (*at(path, "promo/c"), f"sms needs the template file {root}/promo/c.sms.j2, which does not exist"),
    ]  # fmt: skip


# -- who gets which variant --------------------------------------------------------------------------------


def _variants(*weights: float) -> list[Variant]:
    return [Variant(id=chr(ord("a") + i), weight=w, content={"sms": "x"}) for i, w in enumerate(weights)]


def test_the_variant_is_a_stable_hash_of_campaign_and_customer() -> None:
    digest = hashlib.sha256(b"promo:C001").digest()
    assert hash_point("promo", "C001") == int.from_bytes(digest[:8], "big") / 2**64
    chooser = VariantChooser("promo", _variants(70, 30))
    picks = {f"C{i:04d}": chooser.choose(f"C{i:04d}") for i in range(200)}
    again = VariantChooser("promo", _variants(70, 30))
    assert {c: again.choose(c) for c in picks} == picks
    for customer, variant in picks.items():
        assert variant == ("a" if hash_point("promo", customer) < 0.7 else "b")
    other = VariantChooser("another", _variants(70, 30))
    assert {c: other.choose(c) for c in picks} != picks  # campaigns split the same customers independently


@pytest.mark.parametrize("weights", [(70, 30), (1, 1, 1), (0.5, 2, 7.5)])
def test_the_split_follows_the_weights(weights: tuple[float, ...]) -> None:
    chooser = VariantChooser("split-test", _variants(*weights))
    n = 2000
    counts = Counter(chooser.choose(f"cust-{i}") for i in range(n))
    total = sum(weights)
    for variant, weight in zip("abc", weights, strict=False):
        assert abs(counts[variant] / n - weight / total) < 0.035, counts


def test_changing_weights_moves_only_the_customers_between_the_old_and_new_edge() -> None:
    before = VariantChooser("promo", _variants(70, 30))
    after = VariantChooser("promo", _variants(50, 50))
    ids = [f"c{i}" for i in range(2000)]
    moved = [c for c in ids if before.choose(c) != after.choose(c)]
    assert all(before.choose(c) == "a" and 0.5 <= hash_point("promo", c) < 0.7 for c in moved)
    assert abs(len(moved) / len(ids) - 0.2) < 0.035


# -- end to end --------------------------------------------------------------------------------------------

CUSTOMERS = "id,name,phone,country,email,status\n" + "".join(
    f"v{i:02d},Name{i},+1415555{i:04d},US,v{i}@example.com,active\n" for i in range(24)
) + "m01,Mail,,US,m01@example.com,active\n"  # fmt: skip

AB_CAMPAIGN = """
    id: ab-promo
    name: A/B promotion
    purpose: service
    segment: "status == 'active'"
    steps:
      - id: offer
        channel: sms
        fallback: email
        variants:
          - id: a
            weight: 2
            content:
              sms: "Variant A for {{ name }}"
              email: {subject: "A {{ name }}", text: "Variant A mail"}
          - id: b
            content:
              sms: "Variant {{ step.variant }} for {{ name }}"
              email: {subject: "B {{ name }}", text: "Variant B mail"}
"""


def test_each_customer_receives_their_variants_content_on_every_occurrence(
    pipeline: Pipeline, twilio_server: Any, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    path = p.campaign(AB_CAMPAIGN)
    p.run(path, "week-1")
    chooser = VariantChooser("ab-promo", _variants(2, 1))
    rows = {r["customer_id"]: r for r in p.rows(occurrence="week-1")}
    assert len(rows) == 25
    assert Counter(r["variant"] for r in rows.values()).keys() == {"a", "b"}
    for customer, row in rows.items():
        variant = chooser.choose(customer)
        assert row["variant"] == variant and row["status"] == Status.SENT, row
        if customer == "m01":  # no phone: the email fallback carries the variant's email content
            [mail] = smtp_server.handler.to("m01@example.com")
            assert mail.message["Subject"] == f"{variant.upper()} Mail"
            continue
        [sms] = twilio_server.sent_to(row["address"])
        name = f"Name{int(customer[1:])}"
        assert sms["body"] == row["body"] == {"a": f"Variant A for {name}", "b": f"Variant b for {name}"}[variant]

    p.run(path, "week-1")  # re-planning the occurrence writes nothing new
    assert len(p.rows()) == 25
    p.run(path, "week-2")
    assert {r["customer_id"]: r["variant"] for r in p.rows(occurrence="week-2")} == {
        c: r["variant"] for c, r in rows.items()
    }


# -- the report --------------------------------------------------------------------------------------------


def test_wilson_and_newcombe_match_newcombes_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17: 81/263 -> 0.2553 to 0.3662; 56/70 - 48/80 -> 0.0524 to 0.3339
    assert [round(x, 4) for x in wilson(81, 263)] == [0.2553, 0.3662]
    assert [round(x, 4) for x in newcombe(48, 80, 56, 70)] == [0.2, 0.0524, 0.3339]
    assert [round(x, 4) for x in newcombe(3, 10, 9, 10)] == [0.6, 0.1705, 0.8090]


ARMS = {  # variant: (sent, replied, opted out)
    "ctl": (80, 48, 10),
    "b": (70, 56, 2),  # replies up clearly; too few opt-outs to call
    "d": (80, 50, 30),  # replies no different; opt-outs clearly up
    "e": (80, 30, 10),  # replies clearly down; opt-outs the same
    "small": (20, 15, 0),  # fewer than 30 sent
}


def _fill_ledger(engine: Engine, with_source: bool) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rows = []
    for variant, (sent, replied, opted_out) in ARMS.items():
        for i in range(sent + 3):  # 3 more each: 2 suppressed, 1 still queued
            status = Status.DELIVERED if i < sent // 2 else Status.SENT
            if i >= sent:
                status = Status.QUEUED if i == sent else Status.SUPPRESSED
            rows.append(
                {
                    "idempotency_key": f"ab:o:offer:{variant}-{i}:sms",
                    "campaign_id": "ab",
                    "occurrence": "o",
                    "step_id": "offer",
                    "customer_id": f"{variant}-{i}",
                    "channel": "sms",
                    "purpose": "marketing",
                    "status": status,
                    "reason": "no_consent" if status == Status.SUPPRESSED else None,
                    "variant": variant,
                    "replied_at": now if i < replied else None,
                    "opted_out_at": now if sent - opted_out <= i < sent else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    rows.append({**rows[0], "idempotency_key": "ab:o:plain:x:sms", "step_id": "plain", "variant": None})
    source = "id: ab\nsteps:\n  - id: offer\n    variants: [{id: ctl}, {id: b}, {id: d}, {id: e}, {id: small}]\n"
    with engine.begin() as conn:
        conn.execute(deliveries.insert(), rows)
        if with_source:
            conn.execute(
                campaign_runs.insert().values(
                    campaign_id="ab", occurrence="o", status="planned", source=source, started_at=now
                )
            )


def test_report_per_variant_with_a_confidence_interval_and_a_verdict(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill_ledger(engine, with_source=True)
    with engine.connect() as conn:
        report = campaign_report(conn, "ab")
    assert report is not None
    [test] = report["variants"]
    assert test["step"] == "offer" and test["control"] == "ctl"
    arms = {a["variant"]: a for a in test["arms"]}
    assert list(arms) == ["ctl", "b", "d", "e", "small"]  # the file's order, not the alphabet
    assert arms["ctl"] == {
        "variant": "ctl",
        "targeted": 81,
        "suppressed": 2,
        "sent": 80,
        "delivered": 40,
        "replied": 48,
        "opted_out": 10,
        "reach_rate": 0.5,
        "reply_rate": 0.6,
        "opt_out_rate": 0.125,
    }
    assert arms["b"]["reply_rate"] == 0.8 and arms["small"]["sent"] == 20
    results = {c["variant"]: c for c in test["comparisons"]}
    assert all(c["control"] == "ctl" for c in results.values())
    assert results["b"]["reply_rate"] == {"difference": 0.2, "ci95": [0.0524, 0.3339], "verdict": "b better"}
    assert results["b"]["opt_out_rate"]["verdict"] == TOO_SMALL  # b has 2 opt-outs: fewer than 5
    assert results["b"]["opt_out_rate"]["ci95"][1] < 0  # an interval is still given
    assert results["d"]["reply_rate"]["verdict"] == "no significant difference"
    assert results["d"]["opt_out_rate"]["verdict"] == "d worse"
    assert results["e"]["reply_rate"]["verdict"] == "e worse"
    assert results["e"]["opt_out_rate"] == {
        "difference": 0.0,
        "ci95": [-0.1058, 0.1058],
        "verdict": "no significant difference",
    }
    assert results["small"]["reply_rate"]["verdict"] == TOO_SMALL  # 20 sent: fewer than 30
    assert results["small"]["opt_out_rate"]["verdict"] == TOO_SMALL

    print_report(report)
    out = " ".join(capsys.readouterr().out.split())
    assert "variants of step offer (control ctl)" in out
    assert "b against ctl: reply rate +20.0 pts (95% CI +5.2 to +33.4): b better" in out
    assert "opt-out rate -9.6 pts" in out and "too small to call" in out


def test_without_the_campaign_source_the_control_is_the_first_id_alphabetically(engine: Engine) -> None:
    _fill_ledger(engine, with_source=False)
    with engine.connect() as conn:
        report = campaign_report(conn, "ab", occurrence="o")
    assert report is not None
    [test] = report["variants"]
    assert test["control"] == "b" and [a["variant"] for a in test["arms"]] == ["b", "ctl", "d", "e", "small"]
