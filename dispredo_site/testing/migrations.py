"""Moving the test database to a migration state, for the tests of data migrations."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets):
    """Migrate to ``targets`` (``[(app, migration name)]``); returns the apps of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    """The latest migration of every app: where a test leaves the database."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()
