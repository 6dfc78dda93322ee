"""Outreach destination (OUT-01..07): audience status into prospect custom fields, update only."""
