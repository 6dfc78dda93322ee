"""Lambda entry point of the webhook destination: parse, run the pipeline, report."""

from activation_core.handler import destination_handler
from webhook.service import WebhookDestination

lambda_handler = destination_handler(WebhookDestination())
