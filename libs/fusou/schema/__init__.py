"""Table schemas: logical field types, inference from a batch, evolution, Avro rendering."""

from fusou.schema.evolve import MergeResult, merge_batch_schema
from fusou.schema.model import FieldType, SchemaField, TableSchema

__all__ = ["FieldType", "MergeResult", "SchemaField", "TableSchema", "merge_batch_schema"]
