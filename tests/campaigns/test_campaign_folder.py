"""The campaigns folder as `campaigns validate` and the long-running processes read it: a file in it that is a
symbolic link to somewhere outside the folder is not read."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from outreach.campaigns.folder import CampaignFolder
from outreach.core.settings import Settings
from tests.campaign_files import minimal
from tests.workdir import Workdir


def test_validate_refuses_a_link_out_of_the_campaigns_folder(desk: Workdir) -> None:
    desk.write("campaigns/ok.yaml", minimal(id="ok"))
    desk.write("campaigns/versions/v2.yaml", minimal(id="v2"))
    (desk.path / "campaigns/current.yaml").symlink_to(desk.path / "campaigns/versions/v2.yaml")  # inside: fine
    desk.write("elsewhere/other.yaml", minimal(id="other"))
    (desk.path / "campaigns/leak.yaml").symlink_to(desk.path / "elsewhere/other.yaml")

    refused = desk.run("campaigns", "validate", "campaigns")
    assert (refused.returncode, refused.stderr) == (
        2,
        "campaigns/leak.yaml: a symbolic link out of campaigns: not read\n",
    )
    assert refused.stdout == ""
    (desk.path / "campaigns/leak.yaml").unlink()
    done = desk.ok("campaigns", "validate", "campaigns")
    assert [line.split()[-1] for line in done.stdout.splitlines() if line.startswith("ok ")] == ["(v2)", "(ok)"]


def test_the_running_folder_leaves_a_link_out_unread_and_says_so_once(
    engine: Engine,
    make_settings: Callable[..., Settings],
    store_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(store_url)
    folder = settings.campaigns_dir
    folder.mkdir()
    (folder / "ok.yaml").write_text(minimal(id="ok"), encoding="utf-8")
    (tmp_path / "other.yaml").write_text(minimal(id="other"), encoding="utf-8")
    (folder / "leak.yaml").symlink_to(tmp_path / "other.yaml")

    campaigns = CampaignFolder(engine, settings)
    with caplog.at_level(logging.ERROR, logger="outreach.campaigns.folder"):
        campaigns.reload()
        campaigns.reload()
    assert [c.id for c in campaigns.loaded()] == ["ok"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder / 'leak.yaml'}: a symbolic link out of {folder}: not read"
    ]
