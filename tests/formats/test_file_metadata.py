"""The self-description every file FUSOU writes carries."""

from __future__ import annotations

import json

from fusou.formats.file_metadata import FileDescription


def test_the_description_as_footer_metadata() -> None:
    described = FileDescription("u1", "fleet", 4, ("ship_id", "slot"), "at", "_fusou_seq")
    meta = described.key_value_metadata()
    assert meta == {
        "fusou.dataset": "u1",
        "fusou.table": "fleet",
        "fusou.schema_version": "4",
        "fusou.key_fields": '["ship_id", "slot"]',
        "fusou.time_field": "at",
        "fusou.seq_field": "_fusou_seq",
        "fusou.sort_order": '["at", "_fusou_seq"]',
    }
    assert json.loads(meta["fusou.key_fields"]) == ["ship_id", "slot"]
    whole_record = FileDescription("u1", "battle", 1, (), "timestamp", "_fusou_seq")
    assert json.loads(whole_record.key_value_metadata()["fusou.key_fields"]) == []
