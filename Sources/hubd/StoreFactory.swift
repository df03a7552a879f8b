import Hub
import HubSQLite

/// The composition root's one choice of store: every command opens the store here and hands
/// each stage only the protocol of its own stage.
func openStore(_ location: String) throws -> any HubStore {
    try SQLiteStore(path: location)
}
