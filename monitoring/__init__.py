"""Offline monitoring of the prediction log: `make report` (operations summary) and `make monitor` (Evidently drift).

Reads the log through one query layer (`logquery`); imports `domain` and `prediction_log`, never the
server or the pipeline. Development tools: not part of the Bento or its image.
"""
