"""Salesforce Marketing Cloud (V2) source: data extensions -> S3 landing -> `Profile Updated` events.

A Step Functions flow (`statemachine.asl.json`) runs the tasks in `tasks/`; `client.py` is the only
module that knows SFMC URLs, payloads and error codes.
"""
