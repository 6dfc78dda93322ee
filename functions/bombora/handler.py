"""Lambda entry point: every record is rejected to the DLQ with reason `not_implemented` until the
connector lands (it keeps the template whole and the records replayable)."""

from activation_core.handler import not_implemented_handler

lambda_handler = not_implemented_handler()
