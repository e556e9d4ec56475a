"""Answer quality: does a backend do a feature's job, not merely answer with a 200?

Where things go (one look):

- ``cases.py``: a feature's eval set, a JSONL file of `Case` (the request the feature sends, or the
  product's own HTTP request; the checks its answer must pass; optionally a reference answer), read
  with ``file:line: field: problem`` errors.
- ``checks/``: the registry of checks, one small module each, registering itself (``contains.py``,
  ``json_schema.py``, ``judge.py``, ...). A new check is one module there plus its tests.
- ``stats.py``: the Wilson interval the pass rates are reported and scored with.
- ``figures.py``: `QualityFigure` and `CapacityFigure`, as the risk model and the dashboard read them.
- ``judge.py``: the judge backend the ``judge`` check asks (pairwise, both orders).
- ``runner.py``: `airisk eval run`: a feature's cases against its backends, stored as they come.
- ``report.py``: its table, JSON lines and JUnit.
- ``reference.py``: references written into the eval file in place (`airisk eval reference`).
- ``redact.py`` and ``capture.py``: captured traffic (`airisk proxy --capture`) redacted, and turned
  into cases (`airisk eval export`).

Storage is `monitor.store.quality` (runs, answers, capacity) and `monitor.store.capture`; the capacity
search (`airisk eval capacity`) lives in `chaos.capacity`, and the risk model
(`monitor.risk`) counts a fallback only as far as these figures prove it.
"""
