"""The figures the district reports for its visits and village records (the 郾城区 article in
DOMAIN.md), defined once: the demo reproduces them at its scale, and the scorecards and the monthly
report print them beside what the records hold.
"""
from __future__ import annotations

# 六促六防: "共走访6万余户，累计走访13万余人次" over the campaign's two years.
HOUSEHOLDS_VISITED = 60_000
PERSON_VISITS = 130_000
CAMPAIGN_MONTHS = 24
# "510" 圆桌议事会 (5 kinds of participants, meeting on the 10th of each month, 0 distance): "先后召开
# 议事会议32次，进行实地巡查32次，解决群众关心的各类热点、难点问题106个，化解矛盾83个".
MEETINGS = 32
SITE_INSPECTIONS = 32
PROBLEMS_SOLVED = 106
MEETING_DISPUTES_SETTLED = 83
MEETING_DAY = 10
# 裴城镇 三色治理: "今年以来……已化解各类纠纷60余起，记录各类好人好事100余件".
LOGBOOK_DISPUTES_SETTLED = 60
LOGBOOK_GOOD_DEEDS = 100


def figures() -> dict:
    """The reported figures, for printing beside the records' own."""
    return {"households_visited": HOUSEHOLDS_VISITED, "person_visits": PERSON_VISITS,
            "campaign_months": CAMPAIGN_MONTHS, "meetings": MEETINGS,
            "site_inspections": SITE_INSPECTIONS, "problems_solved": PROBLEMS_SOLVED,
            "meeting_disputes_settled": MEETING_DISPUTES_SETTLED,
            "logbook_disputes_settled": LOGBOOK_DISPUTES_SETTLED,
            "logbook_good_deeds": LOGBOOK_GOOD_DEEDS}
