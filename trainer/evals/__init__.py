"""Evals: suites built from corrected and judged runs, replayed against a candidate, compared with a paired test.

- :mod:`.suites` builds an immutable suite version from the store's corrections, outcomes and flags;
- :mod:`.runner` runs a suite against a model (OpenAI-compatible server or a local transformers model) or the
  team's agent (tools replayed from the recording), every call traced;
- :mod:`.compare` pairs two runs case by case and gives the CI gate's verdict (:mod:`.stats` holds the tests);
- :mod:`.junit` and :mod:`.report` write a comparison for CI systems and people.

The public surface is :mod:`tracemill.evals`.
"""
