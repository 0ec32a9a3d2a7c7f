"""One module per engine, each exposing ``ENGINES``: a list of :class:`~doqu.testing.Engine`."""
