"""``tracemill serve``: settings, the Starlette app, the JSON API, the request guard and the token check."""
