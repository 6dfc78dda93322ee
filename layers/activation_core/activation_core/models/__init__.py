"""Pydantic models of the event contract and of the destination configuration."""
