"""How many open merge proposals ask a Launchpad team for a review, read from the web page.

The original framework's helper, with its API: `count_team_reviews(team_name)`. Launchpad's
API lists merge proposals of Bazaar branches only, so the team's "+activereviews" page is read
instead, and the proposals listed under its "Requested reviews ..." and "Reviews ... can do"
headings are counted. `LAUNCHPAD_CODE_BASE` may be changed (tests serve a recorded page).
"""

from __future__ import annotations

import re

import bs4
import requests

LAUNCHPAD_CODE_BASE = "https://code.launchpad.net"

_PROPOSAL_LINK = re.compile(r"^/.*/\+merge/\d+$")
_REVIEW_HEADING = re.compile(r"^(Requested reviews)|(Reviews) .* can do$")


def count_team_reviews(team_name: str) -> int:
    """Open merge proposals on which `team_name` is a requested reviewer."""
    url = f"{LAUNCHPAD_CODE_BASE}/~{team_name}/+activereviews"
    response = requests.get(url, timeout=60)
    response.raise_for_status()
    page = bs4.BeautifulSoup(response.text, features="lxml")

    def heading_or_proposal(tag: bs4.Tag) -> bool:
        if tag.name == "td":
            return "section-heading" in (tag.get("class") or [])
        return tag.name == "a" and bool(_PROPOSAL_LINK.search(str(tag.get("href") or "")))

    count = 0
    counting = False
    for tag in page.find_all(heading_or_proposal):
        if tag.name == "td":
            counting = bool(_REVIEW_HEADING.search(tag.string or ""))
        elif counting:
            count += 1
    return count
