"""The original framework's helpers that its collectors import (rls_bugs: UbuntuRelease,
ubuntu_archive: count_team_reviews), with the originals' API and behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from metrics.lib import lp_scrape_mps
from metrics.lib.ubunturelease import UbuntuRelease
from metrics.testing import UpstreamServer

RECORDED = Path(__file__).parent / "recorded"


def test_releases_compare_by_release_order_with_releases_and_codenames() -> None:
    jammy, noble = UbuntuRelease("jammy"), UbuntuRelease("noble")

    assert jammy < noble
    assert noble > "jammy"
    assert noble == "noble"
    assert jammy == UbuntuRelease("jammy")
    assert noble >= jammy
    assert sorted([noble, UbuntuRelease("focal"), jammy]) == ["focal", "jammy", "noble"]
    assert UbuntuRelease.all_codenames.index("focal") < UbuntuRelease.all_codenames.index("noble")


def test_an_unknown_codename_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Unknown codename 'wobbly'"):
        UbuntuRelease("wobbly")


def test_reviews_requested_of_a_team_are_counted_from_its_active_reviews_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = (RECORDED / "activereviews.html").read_text()
    with UpstreamServer({"/~ubuntu-release/+activereviews": (200, page)}) as launchpad:
        monkeypatch.setattr(lp_scrape_mps, "LAUNCHPAD_CODE_BASE", launchpad.url)

        count = lp_scrape_mps.count_team_reviews("ubuntu-release")

    # Two under "Requested reviews by ...", one under "Reviews ... can do"; the sections of
    # the person's own reviews do not count, nor links that are not merge proposals.
    assert count == 3


def test_a_page_that_cannot_be_read_raises_for_the_collector_to_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with UpstreamServer({"/~nobody/+activereviews": (404, "no such team")}) as launchpad:
        monkeypatch.setattr(lp_scrape_mps, "LAUNCHPAD_CODE_BASE", launchpad.url)

        with pytest.raises(requests.HTTPError, match="404"):
            lp_scrape_mps.count_team_reviews("nobody")
