"""How a grid becomes points and a point becomes a record.

``spec`` (an experiment file checked, with ``values`` and ``trial_lookup``), ``point`` (a
point's id, params and checks, the points listed one by one), ``axes`` and ``grid`` (a whole
grid's ids at once, for --status),
``worker`` (one point run and recorded, in any backend's process), ``report``,
``progress`` and ``describe`` (what run.py prints), ``measures`` (columns derived from
the results table), and the steps of run.py itself (``checks``, ``execute``).
"""
