"""Template files a step names with `template:`: the files each channel needs, names that stay inside the
templates folder, and problems pointed at inside the template file."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach.campaigns.loading import load_campaign
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from tests.campaign_files import CATALOG, minimal, problems, template_file, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name


def test_template_files_email_html_is_optional_and_other_channels_fall_back_to_sms(
    tmp_path: Path, settings: Settings
) -> None:
    template_file(settings, "n/a.subject.j2", "Hi")
    template_file(settings, "n/a.txt.j2", "Hello {{ name }}")
    template_file(settings, "n/a.sms.j2", "SMS {{ name }}")
    template_file(settings, "n/a.wechat.j2", "WeChat {{ name }}")
    steps = (
        "  - id: e\n    channel: email\n    fallback: whatsapp\n    template: n/a\n"
        "  - id: w\n    channel: wechat\n    template: n/a\n"
    )
    loaded = load_campaign(write(tmp_path, minimal(steps)), settings, CATALOG)

    assert set(loaded.templates["e"]["email"].parts) == {"subject", "text"}
    assert loaded.templates["e"]["whatsapp"].parts["body"].text == "SMS {{ name }}"
    assert loaded.templates["w"]["wechat"].parts["body"].text == "WeChat {{ name }}"


def test_template_names_cannot_leave_the_templates_folder(tmp_path: Path, settings: Settings) -> None:
    steps = "  - id: a\n    channel: sms\n    template: ../secrets\n"
    path = write(tmp_path, minimal(steps))
    assert problems(path, settings) == [
        (
            7,
            15,
            "steps[0].template: '../secrets' is not valid: template names are folders and names of letters, "
            "digits, _ and -, like nps/reminder",
        )
    ]


def test_a_symbolic_link_out_of_the_templates_folder_is_not_followed(tmp_path: Path, settings: Settings) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.sms.j2").write_text("the key is {{ name }}", encoding="utf-8")
    template_file(settings, "desk/real.sms.j2", "Hello {{ name }}")
    (settings.templates_dir / "desk/leak.sms.j2").symlink_to(outside / "secret.sms.j2")
    (settings.templates_dir / "elsewhere").symlink_to(outside, target_is_directory=True)
    (settings.templates_dir / "desk/alias.sms.j2").symlink_to(settings.templates_dir / "desk/real.sms.j2")
    steps = (
        "  - id: a\n    channel: sms\n    template: desk/leak\n"
        "  - id: b\n    channel: sms\n    template: elsewhere/secret\n"
        "  - id: c\n    channel: sms\n    template: desk/alias\n"  # a link that stays inside is a file like any
    )
    path = write(tmp_path, minimal(steps))
    root = settings.templates_dir
    assert problems(path, settings) == [
        (7, 15, f"{root / 'desk/leak.sms.j2'} leads out of the templates folder {root} by a symbolic link: not read"),
        (10, 15, f"{root / 'elsewhere/secret.sms.j2'} leads out of the templates folder {root} by a symbolic link: "
         "not read"),
    ]  # fmt: skip


def test_missing_template_files_are_named_at_the_template_key(tmp_path: Path, settings: Settings) -> None:
    template_file(settings, "nps/reminder.subject.j2", "Hi")
    steps = (
        "  - id: a\n    channel: email\n    fallback: sms\n    template: nps/reminder\n"
        "  - id: b\n    channel: wechat\n    template: nps/other\n"
    )
    path = write(tmp_path, minimal(steps))
    root = settings.templates_dir
    assert problems(path, settings) == [
        (8, 15, f"email needs the template file {root / 'nps/reminder.txt.j2'}, which does not exist"),
        (8, 15, f"sms needs the template file {root / 'nps/reminder.sms.j2'}, which does not exist"),
        (11, 15, f"wechat needs the template file {root / 'nps/other.wechat.j2'} (or {root / 'nps/other.sms.j2'}), "
         "which does not exist"),
    ]  # fmt: skip


def test_problems_in_template_files_point_into_the_file(tmp_path: Path, settings: Settings) -> None:
    subject = template_file(settings, "nps/reminder.subject.j2", "Hello {{ name }\n")
    text = template_file(settings, "nps/reminder.txt.j2", "Dear {{ name }},\n\n  see {{ name.__class__ }}\n")
    html = template_file(settings, "nps/reminder.html.j2", "<p>{{ name }}</p>\n<p>{{ nickname }}</p>\n")
    sms = template_file(settings, "nps/reminder.sms.j2", "{% if name %}\nHi\n")
    steps = "  - id: r\n    channel: email\n    fallback: sms\n    template: nps/reminder\n"
    path = write(tmp_path, minimal(steps))

    with pytest.raises(InputError) as caught:
        load_campaign(path, settings, CATALOG)

    assert [(p.path, p.line, p.col, p.message) for p in caught.value.problems] == [
        (str(html), 2, 7, "no customer has a field or attribute named 'nickname'"),
        (str(sms), 1, None, "template does not parse: Unexpected end of template. Jinja was looking for the "
         "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."),
        (str(subject), 1, None, "template does not parse: unexpected '}'"),
        (str(text), 3, 15, "templates may not use names starting with _ ('__class__')"),
    ]  # fmt: skip
    assert str(caught.value).splitlines()[0] == f"{html}:2:7: no customer has a field or attribute named 'nickname'"


def test_a_template_file_that_is_not_utf8(tmp_path: Path, settings: Settings) -> None:
    sms = template_file(settings, "t.sms.j2", "")
    sms.write_bytes("Grüße {{ name }}".encode("latin-1"))
    path = write(tmp_path, minimal("  - id: a\n    channel: sms\n    template: t\n"))
    with pytest.raises(InputError) as caught:
        load_campaign(path, settings, None)
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == (str(sms), None)
    assert problem.message.startswith("cannot read template file: invalid")
