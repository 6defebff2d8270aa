"""What training and serving share, and nothing else: the contract between the pipeline and the service.

- `schema`: each task's raw fields (types, ranges, categories), its kind (regression or classification)
  and its model name;
- `features`, `estimators`: every class of ours that a saved model pickles;
- `drift`: the binning and PSI of the reference profile (stage `profile`) and of the live drift gauges.

Imports no other package of this project: `stages/` (the pipeline), `bento_service/` (the server) and
`monitoring/` (offline reports) import it and never each other.
"""
