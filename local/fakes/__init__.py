"""Fake vendor APIs: real HTTP servers on 127.0.0.1 implementing each vendor's documented semantics."""
