"""Any service whose readiness is one HTTP GET (the Claude API stand-in)."""
