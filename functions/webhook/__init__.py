"""Generic signed webhook destination: batches of JSON records POSTed to an HTTPS endpoint."""
