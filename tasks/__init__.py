"""Prefect tasks: thin `@task` wrappers (retries, caching, logging) over the carbonshift core."""
