from tests.read.conftest import stubs

__all__ = ["stubs"]
