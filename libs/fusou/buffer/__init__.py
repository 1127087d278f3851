"""The buffer of hot rows in PostgreSQL: binary COPY encoding and the group-commit writer."""
