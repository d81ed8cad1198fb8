"""Crash testing: kill -9 the server under load and check what survives (issue 9)."""
