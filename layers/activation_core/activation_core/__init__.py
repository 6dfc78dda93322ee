"""Vendor-neutral core shared by every destination function (shipped as the Lambda layer).

No vendor name belongs here: destinations plug their clients into these mechanisms.
"""
