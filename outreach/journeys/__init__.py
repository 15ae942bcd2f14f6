"""Time: `outreach scheduler` (one at a time, through a leader lock) fires scheduled campaigns, plans follow-up
steps as they come due, releases deferred rows and escalates; `previews` shows every step of a campaign,
follow-ups included, before it goes.

May import: everything below it (core ... inbound).
"""
