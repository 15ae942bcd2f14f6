"""Time: `outreach scheduler` (one at a time, through a leader lock) fires scheduled campaigns, plans follow-up
steps as they come due, releases deferred rows and escalates.

May import: everything below it (core ... inbound).
"""
