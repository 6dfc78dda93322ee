"""Lambda entry point of the RainFocus destination: parse, run the pipeline, report."""

from activation_core.handler import destination_handler
from rainfocus.service import RainfocusDestination

lambda_handler = destination_handler(RainfocusDestination())
