"""The ``fusou`` command line."""
