"""Marketo Engage destination: person audiences to static lists and profiles to leads (MKT-01..09)."""
