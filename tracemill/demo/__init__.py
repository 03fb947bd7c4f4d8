"""``tracemill demo``: the whole loop on a fresh embedded store, from traced runs to a trained model.

A travel-desk agent with tools runs a few hundred tickets against a scripted OpenAI-compatible
model (or a real model when ``OPENAI_API_KEY`` is set), traced by ``tracemill.instrument("openai")``.
The runs are mined, a scripted reviewer corrects the flagged decisions through the feedback API,
the DPO dataset is exported, and a tiny model is trained on it. Each stage is a function of its own
in :mod:`tracemill.demo.stages`; :func:`run_demo` composes them.
"""
