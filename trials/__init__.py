"""Trial kinds: each module here exposes ``trial(params) -> dict`` and a ``Params`` dataclass."""
