"""Test helpers: the real parts (broker, database, workers), the API set-ups, fault tooling."""
