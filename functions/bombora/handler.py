"""Lambda entry point of the Bombora destination: parse, run the pipeline, report."""

from activation_core.handler import destination_handler
from bombora.service import BomboraDestination

lambda_handler = destination_handler(BomboraDestination())
