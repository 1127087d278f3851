"""The error of a client command whose command line or input file is unusable: reported as
one line, exit code 2, and nothing was sent."""

from __future__ import annotations


class InputError(Exception):
    pass
