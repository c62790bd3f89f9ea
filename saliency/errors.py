"""The library's one exception type."""


class SaliencyError(ValueError):
    """A bad parameter, tensor or model for a method or the metric. Its message says what to change;
    scripts print it as one line."""
