"""Feedback in the store: the one checked write path, conflicts between authors, schema checks."""
