"""The prediction server: BentoML service, request guard and schemas, micro-batching, metrics, live drift.

Imports `domain` (schemas, model classes, drift binning) and `prediction_log` (the writer); never the
pipeline (`stages`) or the offline tools (`monitoring`).
"""
