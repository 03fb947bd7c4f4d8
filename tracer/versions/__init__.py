"""Configuration versions in the tracer: the version of an LLM call's configuration, and rollouts."""
