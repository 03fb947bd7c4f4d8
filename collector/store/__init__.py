"""The store: DSNs, the clickhouse-connect client, schema and migrations, typed records and reads."""
