"""Audience snapshots (issue 13): validate a snapshot, diff it against the audience's previous membership,
publish the changes (or every member for a backfill or resync) as targeted events, reconcile."""
