"""The object-key layout: keys built for a dataset and table parse back to them."""

from __future__ import annotations

from fusou.storage.keys import (
    cold_key,
    cold_owner,
    dataset_prefixes,
    optimized_key,
    optimized_table,
    owner,
    raw_key,
)


def test_every_key_of_a_dataset_lies_under_its_prefixes() -> None:
    keys = [raw_key("ds-1"), cold_key("ds-1", "t", "2024-01-02"), optimized_key("ds-1", "t")]
    prefixes = dataset_prefixes("ds-1")
    assert all(sum(k.startswith(p) for p in prefixes) == 1 for k in keys)
    # A plain string prefix: another dataset whose name extends this one is not under it.
    assert not any(raw_key("ds-10").startswith(p) for p in prefixes)


def test_keys_parse_back_to_their_table_even_with_dashes_in_names() -> None:
    assert cold_owner(cold_key("my-ds", "my-table", "2024-01-02")) == ("my-ds", "my-table")
    assert optimized_table(optimized_key("my-ds", "my-table.v2")) == "my-table.v2"
    assert cold_key("d", "t", "2024-01-02").startswith("cold/d/t/date=2024-01-02/")


def test_a_stray_cold_key_has_no_owner() -> None:
    assert cold_owner("cold/ds/stray.avro") == ("", "")


def test_fresh_keys_differ() -> None:
    assert raw_key("d") != raw_key("d")
    assert optimized_key("d", "t") != optimized_key("d", "t")


def test_the_owner_of_a_key_is_the_table_whose_lock_covers_its_writes() -> None:
    assert owner(cold_key("ds", "t-1", "2024-01-02")) == ("ds", "t-1")
    assert owner(optimized_key("ds", "t-1")) == ("ds", "t-1")
    # Raw bundles register in one transaction with their upload: no table lock covers them.
    assert owner(raw_key("ds")) is None
    assert owner("cold/ds/stray.avro") is None
    assert owner("optimized/ds/deeper/t-x.parquet") is None
