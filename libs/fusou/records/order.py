"""The (time, seq) order rows are kept in: the order range reads, the dedup rule and the sort
order compacted files declare all rely on."""

from __future__ import annotations

from typing import Any

import numpy as np


def in_time_seq_order(
    times: np.ndarray[Any, Any], seqs: np.ndarray[Any, Any], *, strict_seqs: bool
) -> bool:
    """Whether rows are sorted by time, then seq; with ``strict_seqs`` rows of equal time must
    have increasing seqs, without it equal seqs are allowed too."""
    step = np.diff(times)
    seq_steps = np.diff(seqs)[step == 0]
    return bool((step >= 0).all() and ((seq_steps > 0) if strict_seqs else (seq_steps >= 0)).all())
