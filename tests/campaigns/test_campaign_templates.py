"""Inline templates in campaign files: the names they may use, and parse errors, sandbox escapes and unknown
names pointed at the exact character, whatever scalar style the YAML uses."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from outreach.campaigns.loading import load_campaign
from outreach.core.settings import Settings
from tests.campaign_files import CATALOG, at, minimal, problems, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name


def test_templates_may_use_context_names_local_names_and_defaults(tmp_path: Path, settings: Settings) -> None:
    text = (
        "{% set greeting = 'Hi' %}{{ greeting }} {{ customer.name }} {{ campaign }} {{ step }} "
        "{% for p in products %}{{ p }}{% endfor %} {{ nickname | default(name) }} {{ unsubscribe_url }}"
    )
    steps = f"  - id: s\n    channel: sms\n    content:\n      sms: |\n        {text}\n"
    # `nickname` is no customer's attribute: only an error once customers are known
    load_campaign(write(tmp_path, minimal(steps)), settings, None)
    assert problems(write(tmp_path, minimal(steps)), settings, CATALOG) == [
        (9, 9 + text.index("nickname"), "no customer has a field or attribute named 'nickname'")
    ]


def test_a_template_that_does_not_parse_in_each_scalar_style(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: a
            channel: email
            fallback: sms
            content:
              sms: "Hello {{ name }"
              email:
                subject: Hello {% if %}
                text: |
                  Dear {{ name }},

                  {% for p in products %}{{ p }}
                  Bye
                html: >
                  <p>Dear {{ name }},
                  {{ name | nosuchfilter }}</p>
          - id: b
            channel: wechat
            content: {wechat: 'It''s {{ name }} {{ }}'}
        """,
    )
    assert problems(path, settings) == [
        (9, 13, "template does not parse: unexpected '}'"),
        (11, 18, "template does not parse: Expected an expression, got 'end of statement block'"),
        # line 3 of the template, where the unclosed loop starts, mapped into the literal block
        (15, 11, "template does not parse: Unexpected end of template. Jinja was looking for the following tags: "
         "'endfor' or 'else'. The innermost block that needs to be closed is 'for'."),
        # a folded block is one template line: the error is placed at its start
        (18, 11, "template error: No filter named 'nosuchfilter'."),
        (22, 24, "template does not parse: Expected an expression, got 'end of print statement'"),
    ]  # fmt: skip


def test_sandbox_escapes_are_refused_at_the_exact_column(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: a
            channel: email
            fallback: sms
            content:
              sms: "{{ name.__class__.__mro__ }}"
              email:
                subject: Hi {{ cycler['__init__'] }}
                text: |
                  Dear {{ name }},
                  {{ name | attr('__class__') }} {% set _secret = 1 %}
                html: >
                  <p>Dear {{ name }},
                  folded {{ customer.__dict__ }}</p>
          - id: b
            channel: wechat
            content: {wechat: 'It''s {{ x["__globals__"] }}'}
          - id: c
            channel: whatsapp
            content:
              whatsapp: "\\"{{ name }}\\" \\u4e2d {{ name._x }}"
        """,
    )
    found = problems(path, settings)
    assert found == [
        (*at(path, "__class__"), "templates may not use names starting with _ ('__class__')"),
        (*at(path, "__mro__"), "templates may not use names starting with _ ('__mro__')"),
        (*at(path, "__init__"), "templates may not use names starting with _ ('__init__')"),
        (*at(path, "__class__", 2), "templates may not use names starting with _ ('__class__')"),
        (*at(path, "_secret"), "templates may not use names starting with _ ('_secret')"),
        (*at(path, "__dict__"), "templates may not use names starting with _ ('__dict__')"),
        (*at(path, "__globals__"), "templates may not use names starting with _ ('__globals__')"),
        (*at(path, "_x"), "templates may not use names starting with _ ('_x')"),
    ]
    assert [(line, col) for line, col, _ in found[:3]] == [(9, 21), (9, 31), (11, 32)]


def test_templates_cannot_include_other_templates(tmp_path: Path, settings: Settings) -> None:
    steps = "  - id: a\n    channel: sms\n    content:\n      sms: |\n        Hi\n        {% include 'x.j2' %}\n"
    assert problems(write(tmp_path, minimal(steps)), settings) == [
        (10, 9, "templates cannot include, import or extend other templates")
    ]


def test_unknown_template_variables_only_once_customers_are_known(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: a
            channel: email
            content:
              email:
                subject: "{{ name }}, {{ nmae }} and {{ nmae }} again"
                text: >-
                  Dear {{ name }}, your balance is
                  {{ balance }} and your age {{ age }}.

                  Regards, {{ branch.manager }}
        """,
    )
    load_campaign(path, settings, None)
    load_campaign(path, settings, {})  # an empty store knows no attributes yet
    assert problems(path, settings, CATALOG) == [
        (9, 34, "no customer has a field or attribute named 'nmae'"),
        (12, 14, "no customer has a field or attribute named 'balance'"),
        (14, 23, "no customer has a field or attribute named 'branch'"),
    ]


# -- positions inside strings, whatever style the YAML writer chose -------------------------------------------


_TEXT = st.text(alphabet=st.sampled_from([*"ab z:#-'\"\\\t\n,[]&*!|>%@`", "中", "é", "😀"]), max_size=40)
_STYLES = {
    "plain": str,
    "double": DoubleQuotedScalarString,
    "single": SingleQuotedScalarString,
    "literal": LiteralScalarString,
    "folded": FoldedScalarString,
}


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_TEXT, after=_TEXT, style=st.sampled_from(sorted(_STYLES)), width=st.sampled_from([20, 4096]))
def test_a_template_error_lands_on_the_right_character_in_every_scalar_style(
    tmp_path: Path, settings: Settings, before: str, after: str, style: str, width: int
) -> None:
    template = before + "{{ x.__secret }}" + after
    yaml = YAML()
    yaml.width = width
    document = {
        "id": "c1",
        "name": "Test",
        "purpose": "service",
        "steps": [{"id": "a", "channel": "sms", "content": {"sms": _STYLES[style](template)}}],
    }
    path = tmp_path / "generated.yaml"
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)

    [(line, col, message)] = problems(path, settings)

    assert message == "templates may not use names starting with _ ('__secret')"
    assert col is not None and line is not None
    source_line = path.read_text(encoding="utf-8").split("\n")[line - 1]
    assert source_line[col - 1 :].startswith("__secret"), (source_line, col)
