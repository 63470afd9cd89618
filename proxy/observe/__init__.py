"""Observation of finished calls for other systems: Prometheus metrics, OpenTelemetry GenAI spans."""
