"""A judge model over an OpenAI-compatible API: prompts, the client, verdicts stored as judge feedback."""
