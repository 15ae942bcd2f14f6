"""Every column of an import is an attribute, even one no row fills; its type comes from a header hint
(`nps:number`), `--types`, its values, or, with none of those, it is a string until its first values type it.
As a user sees it: `outreach customers import` and `customers show`."""

from __future__ import annotations

from tests.workdir import Workdir


def test_an_empty_column_is_kept_and_typed_by_its_first_values(desk: Workdir) -> None:
    desk.write("first.csv", "id,name,tier,nps\nB001,Ann,gold,\nB002,Ben,basic,\n")
    first = desk.ok("customers", "import", "first.csv", COLUMNS="200")
    assert "new attributes: nps (string, no values yet), tier (string)" in first.stdout
    # the survey whose answers go to nps may use it before anyone answered (the campaign)
    desk.write(
        "survey.yaml",
        """
        id: nps-check
        name: NPS check
        purpose: service
        segment: "nps is None"
        steps:
          - id: ask
            channel: email
            expects: {survey: nps, attribute: nps}
            content: {email: {subject: "How did we do?", text: "Reply 0-10."}}
        """,
    )
    assert "ok  survey.yaml  (nps-check)" in desk.ok("campaigns", "validate", "survey.yaml").stdout

    desk.write("second.csv", "id,nps\nB001,9\nB002,\n")
    second = desk.json("customers", "import", "second.csv")
    assert (second["new_attributes"], second["untyped_attributes"]) == ({"nps": "number"}, [])
    assert desk.json("customers", "show", "B001")["customer"]["attributes"]["nps"] == 9
    # from now on nps is a number: text in it is refused, naming the row, and nothing is imported
    desk.write("third.csv", "id,nps\nB002,high\n")
    refused = desk.run("customers", "import", "third.csv")
    assert refused.returncode == 2
    assert "third.csv:2: nps: " in refused.stderr and "(earlier imports made this a number attribute)" in refused.stderr


def test_types_from_the_header_and_the_option(desk: Workdir) -> None:
    desk.write("hinted.csv", "id,score:number,joined,codes:list\nC1,,2024-01-31,a;b\nC2,7,,\n")
    done = desk.json("customers", "import", "hinted.csv", "--types", "joined=string")
    assert done["new_attributes"] == {"score": "number", "joined": "string", "codes": "list"}
    shown = desk.json("customers", "show", "C1")["customer"]["attributes"]
    assert shown == {"joined": "2024-01-31", "codes": ["a", "b"]}

    # an empty column with a declared type is typed at once
    desk.write("empty.csv", "id,balance:number\nC1,\n")
    assert desk.json("customers", "import", "empty.csv")["new_attributes"] == {"balance": "number"}

    # a value that does not fit the declared type, a type word that is none, one that contradicts what earlier
    # imports settled, a column --types names that the file lacks: all refused together, nothing imported
    desk.write("bad.csv", "id,level:number,grade:numbr,score:string\nC3,high,1,2\n")
    bad = desk.run("customers", "import", "bad.csv", "--types", "missing=date")
    assert bad.returncode == 2, bad.stderr
    assert "bad.csv:1: column 'grade:numbr': the type after ':' is one of number, boolean, date, string, list" in (
        bad.stderr
    )
    assert "bad.csv:1: column 'score:string': earlier imports made score a number attribute" in bad.stderr
    assert "--types: missing=date: bad.csv has no column missing" in bad.stderr
    assert "bad.csv:2: level: " in bad.stderr
    unknown = desk.run("customers", "import", "hinted.csv", "--types", "joined=text")
    assert unknown.returncode == 2
    assert "--types: 'joined=text': the type is one of number, boolean, date, string, list" in unknown.stderr
    assert desk.run("customers", "show", "C3").returncode == 2
