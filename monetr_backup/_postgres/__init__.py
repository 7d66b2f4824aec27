"""PostgreSQL: client programs, the preflight check, pg_dump as a source, pg_restore as a target."""
