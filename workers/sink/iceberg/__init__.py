"""Apache Iceberg tables (the ``iceberg`` variant): every flush batch becomes one Parquet data file committed to the
integration's table in one append snapshot, exactly once.

- ``table``: the table's schema and partition spec, created at install (or first commit) and checked;
- ``catalogs``: the catalog an integration names (``sql``: SQLite or PostgreSQL through SQLAlchemy; ``glue``: the AWS
  Glue Data Catalog), opened with the integration's own credentials;
- ``encoder``: the streaming Parquet encoder of the ``parquet`` variant, shaped to the table (field ids, microsecond
  timestamps, the partition columns);
- ``commit``: the data file's entry (statistics, partition) and the exactly-once append;
- ``maintain``: compaction of closed hours, snapshot expiry, removal of files no snapshot references.

pyiceberg (with pyarrow) writes every piece of Iceberg metadata; nothing here writes metadata by hand.
"""
