"""Lambda entry point of the Marketo Engage destination: parse, run the pipeline, report."""

from activation_core.handler import destination_handler
from marketo.service import MarketoDestination

lambda_handler = destination_handler(MarketoDestination())
