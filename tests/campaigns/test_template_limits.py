"""The template limits: arithmetic, repetition, formats and loops that would hang or exhaust memory are refused,
at validation where written when the template alone decides it, for that customer (`render_error`) when their
values do; ordinary arithmetic and filters work as before."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from outreach.campaigns.rendering import RenderError, TemplateText, compile_template, render
from outreach.core.settings import Settings
from tests.campaign_files import at, minimal, problems, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name
from tests.workdir import Workdir

BOMBS = """
    id: bombs
    name: Bombs
    purpose: service
    steps:
      - id: power
        channel: sms
        content: {sms: "Hi {{ 9**(9**9) }}"}
      - id: repeat
        channel: sms
        content: {sms: "{{ 'x' * 1000000000 }}"}
      - id: width
        channel: sms
        content: {sms: "{{ '%999999999d' | format(1) }}"}
"""


def test_validate_refuses_arithmetic_past_the_bounds_where_it_is_written(desk: Workdir) -> None:
    path = desk.write("bombs.yaml", BOMBS)
    done = desk.run("campaigns", "validate", "bombs.yaml")
    assert done.returncode == 2, done.stdout
    power, repeat, width = (at(path, needle) for needle in ("**(9", "* 1000000000", "format(1)"))
    assert done.stderr.splitlines() == [
        f"bombs.yaml:{power[0]}:{power[1]}: template error: 9 ** 387420489: an exponent in a template is at most 100",
        f"bombs.yaml:{repeat[0]}:{repeat[1]}: template error: 'x' * 1000000000 would make 1,000,000,000 characters "
        "or items; a template builds values of at most 100,000",
        f"bombs.yaml:{width[0]}:{width[1]}: template error: format '%999999999d' would make 1,000,000,013 characters "
        "or items; a template builds values of at most 100,000",
    ]
    assert done.stdout == ""
    ran = desk.run("campaigns", "run", "bombs.yaml")
    assert ran.returncode == 2 and "an exponent in a template is at most 100" in ran.stderr
    assert not (desk.path / "outbox").exists()


def test_the_operator_or_filter_that_goes_past_is_the_one_pointed_at(tmp_path: Path, settings: Settings) -> None:
    sms = "{{ 2**10 }} {{ (9**9)**12 }} {{ 'ab' * 3 }} {{ ('-' * 99999) * 2 }} {{ 'x' | center(100001) }}"
    path = write(tmp_path, minimal(f'  - id: s\n    channel: sms\n    content: {{sms: "{sms}"}}\n'))
    assert problems(path, settings) == [
        (*at(path, "**12"), "template error: 387420489 ** 12 would make a number past 10**100, the largest a "
         "template may use"),
        (*at(path, "* 2 }}"), "template error: '------------...' * 2 would make 199,998 characters or items; a "
         "template builds values of at most 100,000"),
        (*at(path, "center"), "template error: center(100001) would make 100,001 characters or items; a template "
         "builds values of at most 100,000"),
    ]  # fmt: skip


def test_a_template_nested_past_what_jinja_compiles_is_an_error_not_a_crash(tmp_path: Path, settings: Settings) -> None:
    brackets = "[" * 100 + "]" * 100
    sums = " + ".join(["name"] * 400)
    steps = "".join(
        f'  - id: s{i}\n    channel: sms\n    content: {{sms: "Hi {{{{ {expression} }}}}"}}\n'
        for i, expression in enumerate((brackets, sums))
    )
    path = write(tmp_path, minimal(steps))
    message = "template error: the template nests expressions too deeply to compile: write it flatter"
    assert problems(path, settings) == [(*at(path, "Hi {{ [["), message), (*at(path, "Hi {{ name +"), message)]


def test_ordinary_arithmetic_repetition_and_formats_still_render(desk: Workdir) -> None:
    desk.write("customers.csv", "id,name,phone,country,amount\nc1,Ann,+14155550801,US,250\n")
    desk.ok("customers", "import", "customers.csv")
    sms = (
        "{{ amount * 2 }} {{ 2**10 }} {{ '-' * 20 }} {{ '%05.1f' | format(3.14159) }} {{ '{:,}'.format(1234567) }} "
        "{{ name | center(7) }}|{{ name ~ '!' }} {{ [1, 2, 3] | sum }}"
    )
    desk.write("ok.yaml", minimal(f'  - id: s\n    channel: sms\n    content: {{sms: "{sms}"}}\n'))
    [step] = desk.json("campaigns", "plan", "ok.yaml", "--customer", "c1")["steps"]
    assert step["body"] == "500 1024 -------------------- 003.1 1,234,567   Ann  |Ann! 6"


def test_a_customer_whose_values_go_past_a_bound_is_suppressed_when_sent(desk: Workdir) -> None:
    note = "x" * 1000  # three loops over it would run a billion times
    desk.write(
        "customers.csv",
        f"id,name,phone,country,times,note\nc1,Ann,+14155550801,US,3,hi\nc2,Ben,+14155550802,US,1000000000,hi\n"
        f"c3,Cy,+14155550803,US,1,{note}\n",
    )
    desk.ok("customers", "import", "customers.csv")
    loops = "{% for a in note %}{% for b in note %}{% for c in note %}.{% endfor %}{% endfor %}{% endfor %}"
    sms = "{{ '-' * times }}" + loops
    desk.write("dash.yaml", minimal(f'  - id: s\n    channel: sms\n    content: {{sms: "{sms}"}}\n'))
    desk.ok("campaigns", "validate", "dash.yaml")  # only the customers' values make it too much
    desk.ok("campaigns", "run", "dash.yaml")
    assert [m["body"] for m in desk.outbox("sms")] == ["---" + "." * 8]
    report = desk.json("report", "c1")
    assert report["funnel"]["sent"] == 1 and report["suppressed_by_reason"] == {"render_error": 2}
    # the worker that claimed each row refused to render it, and says why on the customer's timeline
    refusals = {customer: desk.json("customers", "show", customer)["timeline"][-1] for customer in ("c2", "c3")}
    assert {c: (e["kind"], e["data"]["reason"]) for c, e in refusals.items()} == {
        "c2": ("delivery.suppressed", "render_error"),
        "c3": ("delivery.suppressed", "render_error"),
    }
    assert refusals["c2"]["data"]["detail"] == (
        "'-' * 1000000000 would make 1,000,000,000 characters or items; a template builds values of at most 100,000"
    )
    assert refusals["c3"]["data"]["detail"] == (
        "the template ran more than 200,000 steps for one message (loops, macro calls and filters)"
    )


def rendered(source: str, **values: Any) -> str:
    return render(compile_template(TemplateText(source, "t", lambda line: (line, None))), values)


LONG = "x" * 50_000


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("{{ 'x'.ljust(1000000000) }}", "'x'.ljust() would make 1,000,000,000 characters"),
        ("{{ '{:>999999999}'.format(1) }}", "format '{:>999999999}' would make 1,000,000,016 characters"),
        ("{{ '%*d' % (1000000000, 1) }}", "format '%*d': write widths as numbers in the format, not *"),
        ("{{ [1] | batch(1000000000, 'x') | list }}", "batch(1000000000) would make 1,000,000,000"),
        ("{{ [1] | slice(1000000000) | list }}", "slice(1000000000) would make 1,000,000,000"),
        ("{{ ('a\\n' * 1000) | indent(100) }}", "indent(100) would make 102,100 characters"),
        ("{{ s | wordwrap(1) }}", "wordwrap(1) would make 100,001 characters"),
        ("{{ s.replace('', s) }}", "would make 2,500,100,000 characters"),
        ("{{ s | replace('x', 'yyy') }}", "replace would make 150,000 characters"),
        ("{{ (s[:300] | list) | join(s) }}", "join would make 14,950,601 characters"),
        ("{{ [1, 2] | tojson(1000000000) }}", "tojson(1000000000) would make 1,000,000,000"),
        ("{{ (s ~ s ~ s) }}", "the template would make 150,000 characters"),
        ("{% set a = [s] %}{% set a = [a, a] %}{{ [a, a] | length }}", "the template would make 100,007 characters"),
        ("{{ s + s + s }}", "would make 150,000 characters"),
        ("{{ 10**100 * 10 }}", "would make a number past 10**100, the largest a template may use"),
        ("{{ [[1]] | sum(start=[]) }}", "sum adds numbers: its start must be a number"),
        ("{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}", "ran more than 200,000 steps"),
        ("{% for a in s %}{% for b in s if b == 'y' %}{% endfor %}{% endfor %}", "ran more than 200,000 steps"),
        ("{% macro d(n) %}{{ d(n-1) if n }}{{ d(n-1) if n }}{% endmacro %}{{ d(40) }}", "ran more than 200,000"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "the template calls itself too deeply"),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "the template calls itself too deeply"),
        ("{% for a in s %}{{ t }}{% endfor %}", "built more than 10,000,000 characters for one message"),
    ],
)
def test_what_would_hang_a_worker_is_refused_for_the_customer(source: str, refusal: str) -> None:
    with pytest.raises(RenderError) as refused:
        rendered(source, s=LONG, t="y" * 90_000)
    assert refusal in str(refused.value), refused.value


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 2**10 }} {{ 2 ** -1 }} {{ amount * 2 }} {{ amount + 1 }} {{ 7 % 3 }}", "1024 0.5 215.00 108.50 1"),
        ("{{ '-' * 20 }}{{ 3 * 'ab' }}{{ [0] * 3 }}", "--------------------ababab[0, 0, 0]"),
        ("{{ '%05.1f' | format(3.14159) }} {{ '%s-%s' % ('a', 'b') }} {{ '{:>6}'.format('x') }}", "003.1 a-b      x"),
        ("{{ products | join(', ') }}|{{ products | map('upper') | join }}", "card, loan|CARDLOAN"),
        ("{% for p in products %}{{ loop.index }}.{{ p }} {% endfor %}", "1.card 2.loan"),
        ("{% macro b(x) %}[{{ x }}]{% endmacro %}{{ b(name) }}{% set y %}{{ name }}!{% endset %}{{ y }}", "[Ann]Ann!"),
        (
            "{{ {'a': 1, 'b': [1, 2]} | tojson }} {{ (1, 2) | list }} {{ name ~ '?' }}",
            '{"a": 1, "b": [1, 2]} [1, 2] Ann?',
        ),
        ("{{ 'one two three' | wordwrap(7) | replace('\n', '/') }} {{ 'a' | center(3) }}|", "one two/three  a |"),
    ],
)
def test_ordinary_templates_render_as_before(source: str, expected: str) -> None:
    assert rendered(source, name="Ann", amount=Decimal("107.50"), products=["card", "loan"]) == expected
