"""Dev-only local harness: moto server, offline SAM translation, Lambda runner, SQS poller.

Import `local.stack.LocalStack`; this package itself stays import-light on purpose.
"""
