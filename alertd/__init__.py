"""alertd: rule-based alerting over training-metric streams."""
__version__ = "0.1.0"
