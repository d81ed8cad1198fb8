"""The web console (issue 14): server-rendered pages at /console/ of `nubes server`, a client of
the API like the CLI. It imports no domain, store or drivers (an import-linter contract)."""
