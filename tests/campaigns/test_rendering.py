"""Rendering: the sandbox, escaping only in HTML, SMS encodings and segments, opt-out wording, signed links."""

from __future__ import annotations

import pytest

from outreach.campaigns.model import Campaign
from outreach.campaigns.rendering import MissingData, RenderError, TemplateText, compile_template, render
from outreach.campaigns.templates import ChannelTemplates
from outreach.channels.sms_encoding import sms_size
from outreach.core.settings import Settings
from outreach.customers.unsubscribe import make_token, read_token
from outreach.planning.messages import StepComposer, by_locale

KEY = b"k" * 32


def text(source: str, html: bool = False) -> TemplateText:
    return TemplateText(source, "test", lambda line: (line, None), html=html)


def composer(purpose: str, sms: str = "{{ name }}您好", html: str = "<p>{{ name }}</p>") -> StepComposer:
    campaign = Campaign.model_validate(
        {
            "id": "c",
            "name": "C",
            "purpose": purpose,
            "steps": [
                {
                    "id": "s",
                    "channel": "sms",
                    "fallback": "email",
                    "content": {
                        "sms": sms,
                        "email": {"subject": "Hi {{ name }}", "text": "Hi {{ name }}", "html": html},
                    },
                }
            ],
        }
    )
    templates = {
        "sms": ChannelTemplates("sms", {"body": text(sms)}),
        "email": ChannelTemplates(
            "email", {"subject": text("Hi {{ name }}"), "text": text("Hi {{ name }}"), "html": text(html, True)}
        ),
    }
    return StepComposer(campaign, campaign.steps[0], templates, Settings(public_url="https://bank.example"), KEY)


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("{" * 80, "GSM-7", 1),  # extension characters take two septets
        ("{" * 81, "GSM-7", 2),
        ("您" * 70, "UCS-2", 1),
        ("您" * 71, "UCS-2", 2),
        ("您" * 134, "UCS-2", 2),
        ("您" * 135, "UCS-2", 3),
        ("a" * 69 + "😀", "UCS-2", 2),  # an emoji is two UTF-16 units
        ("Hello é à ü", "GSM-7", 1),
    ],
)
def test_sms_segments(body: str, encoding: str, segments: int) -> None:
    size = sms_size(body)
    assert (size.encoding, size.segments) == (encoding, segments)


def test_html_escapes_values_text_does_not() -> None:
    customer = {"id": "x", "name": "<b>Tom & Jerry</b>", "locale": "en", "email": "t@example.com"}
    message = composer("service").compose("email", customer)
    assert message.subject == "Hi <b>Tom & Jerry</b>"
    assert message.body == "Hi <b>Tom & Jerry</b>"
    assert message.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert message.headers == {}  # service email: no unsubscribe headers


def test_marketing_sms_carries_opt_out_wording_by_locale() -> None:
    c = composer("marketing")
    assert c.compose("sms", {"id": "1", "name": "王芳", "locale": "zh-CN"}).body == "王芳您好 回复R拒收"
    assert c.compose("sms", {"id": "2", "name": "Tom", "locale": "en"}).body == "Tom您好 Reply STOP to opt out"
    assert c.compose("sms", {"id": "3", "name": "Zoé", "locale": "fr"}).body.endswith("Reply STOP to opt out")
    already = composer("marketing", sms="{{ name }}您好,回复R拒收")
    assert already.compose("sms", {"id": "1", "name": "王", "locale": "zh-CN"}).body == "王您好,回复R拒收"
    assert by_locale({"zh": "A", "zh-TW": "B", "default": "C"}, "zh-TW") == "B"


def test_marketing_email_has_a_signed_unsubscribe_link_and_one_click_headers() -> None:
    message = composer("marketing").compose("email", {"id": "cust-1", "name": "Tom", "locale": "en"})
    link = message.headers["List-Unsubscribe"].strip("<>")
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.startswith("https://bank.example/u/")
    assert link in message.body and message.html is not None and link in message.html
    token = link.rsplit("/", 1)[1]
    assert read_token(KEY, token) == ("cust-1", "email", "marketing")
    assert read_token(b"another key" * 3, token) is None
    assert make_token(KEY, "cust-1", "email", "marketing") == token  # the same link every time
    altered = token[:8] + ("A" if token[8] != "A" else "B") + token[9:]
    assert read_token(KEY, altered) is None
    assert read_token(KEY, "garbage") is None


def test_missing_values_and_unsafe_calls_fail_the_customer_not_the_run() -> None:
    with pytest.raises(MissingData, match="city"):
        render(compile_template(text("{{ name }} in {{ city }}")), {"name": "x"})
    assert render(compile_template(text("{{ city | default('your city') }}")), {}) == "your city"
    with pytest.raises(RenderError):
        render(compile_template(text("{{ customer.update({'name': 'x'}) }}")), {"customer": {"name": "y"}})
    with pytest.raises(RenderError):
        render(compile_template(text("{{ ''.__class__.__mro__ }}")), {})
