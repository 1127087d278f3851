"""Removing data on purpose: purging a dataset everywhere (``purge``)."""
