import Hub
import HubPostgres
import HubSQLite

/// The composition root's one choice of store: every command opens the store here and hands
/// each stage only the protocol of its own stage. A `postgres://` address opens the shared
/// PostgreSQL store; anything else is the path of the embedded SQLite file.
func openStore(_ location: String) throws -> any HubStore {
    if PostgresLocation.isPostgres(location) { return try PostgresStore(url: location) }
    return try SQLiteStore(path: location)
}
