"""How each contender runs: ours, pg_dump/pg_restore, awscli pipelines, the object loop."""
