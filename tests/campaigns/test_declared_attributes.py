"""A survey's own attribute is known before its first answer: `only_if: "nps is None"` validates and plans on
a fresh store, where no customer has the attribute yet."""

from __future__ import annotations

from tests.workdir import Workdir

CUSTOMERS = """
    id,name,phone,country,locale,consent_sms,tier
    B001,Ann,+14155550101,US,en,yes,gold
    B002,Ben,+14155550102,US,en,yes,basic
"""

SURVEY = """
    id: nps-check
    name: NPS check
    purpose: service
    steps:
      - id: ask
        channel: sms
        expects: {survey: nps, attribute: nps}
        content: {sms: "{{ name }}, how likely are you to recommend us (0-10)?"}
      - id: remind
        after: 3d
        unless: replied
        only_if: "nps is None"
        channel: sms
        content: {sms: "{{ name }}, one more chance to tell us (0-10)."}
"""


def test_the_issue_survey_validates_and_plans_on_a_fresh_store(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("survey.yaml", SURVEY)
    validated = desk.ok("campaigns", "validate", "survey.yaml")
    assert "ok  survey.yaml  (nps-check)" in validated.stdout
    plan = desk.json("campaigns", "plan", "survey.yaml")
    assert plan["steps"][0]["to_send"] == 2

    # a name the campaign does not declare is still refused, at its place in the file
    desk.write("typo.yaml", SURVEY.replace('"nps is None"', '"npss is None"'))
    refused = desk.run("campaigns", "validate", "typo.yaml")
    assert refused.returncode == 2
    assert "typo.yaml:12:15: steps[1].only_if: no customer has a field or attribute named 'npss'" in refused.stderr


def test_the_readme_survey_example_validates_on_a_fresh_store(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    # the README's example: `expects: {survey: nps}` fills nps_score, which the reminder's only_if reads
    readme = SURVEY.replace("{survey: nps, attribute: nps}", "{survey: nps}")
    readme = readme.replace("nps is None", "nps_score is None")
    desk.write("readme.yaml", readme)
    assert "ok  readme.yaml" in desk.ok("campaigns", "validate", "readme.yaml").stdout
    # an attribute the customers already hold with another type stays a clash
    desk.write("clash.yaml", readme.replace("{survey: nps}", "{survey: nps, attribute: tier}"))
    clash = desk.run("campaigns", "validate", "clash.yaml")
    assert clash.returncode == 2
    assert "the answers are a number but the attribute 'tier' holds a string" in clash.stderr
