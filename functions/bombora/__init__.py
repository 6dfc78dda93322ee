"""Bombora destination: account audiences as Manual account lists of company domains, one per audience."""
