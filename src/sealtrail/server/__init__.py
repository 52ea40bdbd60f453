"""The HTTP service: API, roles, metrics (``sealtrail serve``)."""
