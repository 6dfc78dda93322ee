"""Outreach destination (not implemented yet: records are rejected with reason not_implemented)."""
