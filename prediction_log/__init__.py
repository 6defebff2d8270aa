"""The prediction log: every answered prediction and every rejected request, durable before the answer.

`store` defines what is kept (tables, row types, encodings, the default location); `writer` is the
group-committing writer the service runs in each worker. Read it with monitoring/logquery.py.
Imports no other package of this project.
"""
