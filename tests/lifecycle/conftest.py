from tests.read.conftest import stubs
from tests.read.test_equivalence import READS

__all__ = ["SOME_READS", "stubs"]

# The reads the lifecycle tests check after every step: everything, and two ranges that cut
# through blocks and deletions' ranges (the read path's own tests check every kind of range).
SOME_READS = (READS[0], READS[5], READS[6])
