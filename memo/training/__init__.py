"""The ``train`` trial's machinery: the loop (``loop``), its steps (``steps``), per-epoch
checkpoints (``checkpoints``), and the probes of the random-label, init-scale and
weight-noise studies (``probes``, ``alignment``). The networks are in memo/nets/."""
