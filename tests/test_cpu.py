"""The CPU worker pool: work runs in another process, errors come back intact, a dead worker
is replaced."""

from __future__ import annotations

import os
import pickle
import sys

import pytest

from fusou import cpu
from fusou.errors import FieldViolation, InvalidArgument, NotFound, Unavailable


def _pid() -> int:
    return os.getpid()


def _fail() -> None:
    raise InvalidArgument.many(
        [FieldViolation("rows[3].hp", "bad"), FieldViolation("table", "worse")]
    )


def _die() -> None:
    os._exit(3)


def _imported(name: str) -> bool:
    return name in sys.modules


def test_domain_errors_survive_pickling() -> None:
    err = InvalidArgument.many([FieldViolation("a", "x"), FieldViolation("b", "y")])
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, InvalidArgument)
    assert back.violations == err.violations and back.message == err.message
    other = pickle.loads(pickle.dumps(NotFound("gone")))
    assert isinstance(other, NotFound) and other.message == "gone"


async def test_work_runs_in_a_worker_process_and_errors_come_back() -> None:
    cpu.configure(1)
    assert await cpu.run_in_process(_pid) != os.getpid()
    with pytest.raises(InvalidArgument) as err:
        await cpu.run_in_process(_fail)
    assert [v.field for v in err.value.violations] == ["rows[3].hp", "table"]


async def test_a_dead_worker_answers_unavailable_and_is_replaced() -> None:
    cpu.configure(1)
    first = await cpu.run_in_process(_pid)
    with pytest.raises(Unavailable):
        await cpu.run_in_process(_die)
    second = await cpu.run_in_process(_pid)
    assert second not in (first, os.getpid())


async def test_zero_workers_runs_on_a_thread_of_this_process() -> None:
    cpu.configure(0)
    try:
        assert await cpu.run_in_process(_pid) == os.getpid()
    finally:
        cpu.configure(1)


def _fresh_pool() -> None:
    cpu.configure(0)
    cpu.configure(1)


async def test_warm_up_starts_the_workers_with_the_named_modules_imported() -> None:
    module = "fusou.records.dedup"
    _fresh_pool()
    assert not await cpu.run_in_process(_imported, module)
    _fresh_pool()
    await cpu.warm_up(module)
    assert await cpu.run_in_process(_imported, module)
