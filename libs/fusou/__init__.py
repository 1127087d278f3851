"""FUSOU data pipeline: shared domain code for the gRPC services."""

__version__ = "0.1.0"
