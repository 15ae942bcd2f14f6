"""What every layer may use, knowing nothing of the engine's tables or channels: settings (defaults, TOML,
OUTREACH_* variables), the error tree, durations, YAML that remembers where each value came from, safe CSV
cells, group commit.

May import: nothing of outreach.
"""
