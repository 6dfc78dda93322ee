"""Lambda entry point of the Outreach destination: parse, run the pipeline, report."""

from activation_core.handler import destination_handler
from outreach.service import OutreachDestination

lambda_handler = destination_handler(OutreachDestination())
