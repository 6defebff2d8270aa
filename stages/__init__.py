"""Pipeline stages: each module with a ``main`` is a thin command-line shell over pure functions.

Keep this package's import cheap: DVC runs one Python process per stage, and `bento_service`
imports `stages.schema` and `stages.features` at serving time.
"""
