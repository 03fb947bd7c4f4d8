"""Receiving spans: OTLP decoding, span → row conversion, the spool, the batch writer, dead letters, forwarding,
the SDK exporter into a store and the outbox intake."""
