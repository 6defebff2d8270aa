"""The prediction service: BentoML app, request schemas, micro-batching and the prediction log."""
