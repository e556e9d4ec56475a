"""Answer quality: does a backend do a feature's job, not merely answer with a 200?

Where things go (one look):

- ``cases.py``: a feature's eval set, a JSONL file of `Case` (the request the feature sends, or the
  product's own HTTP request; the checks its answer must pass; optionally a reference answer), read
  with ``file:line: field: problem`` errors.
- ``checks/``: the registry of checks, one small module each, registering itself (``contains.py``,
  ``json_schema.py``, ``judge.py``, ...). A new check is one module there plus its tests.
- ``stats.py``: the Wilson interval the pass rates are reported and scored with.

The runner (`airisk eval run`), its storage and the risk model's use of the figures build on these.
"""
