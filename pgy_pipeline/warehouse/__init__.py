"""The Postgres warehouse: connection (URL or embedded), migrations, and the deduplicating loader."""
