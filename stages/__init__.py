"""Pipeline stages: each module with a ``main`` is a thin command-line shell over pure functions.

Imports `domain` (schemas, model classes, drift binning); never the server (`bento_service`) or the
offline tools (`monitoring`). DVC runs one Python process per stage: keep imports lazy where they are heavy.
"""
