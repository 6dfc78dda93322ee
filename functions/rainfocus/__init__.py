"""RainFocus attendee profiles destination (RNF-01..06)."""
