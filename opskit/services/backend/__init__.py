"""The backend: an HTTP service the stack fronts, restartable beside a relief instance."""
