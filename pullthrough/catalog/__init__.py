"""The catalog: repositories, versions, content, remotes, distributions, tasks (SQLAlchemy 2)."""
