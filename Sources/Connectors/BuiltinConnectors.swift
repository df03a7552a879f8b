public import Hub

/// The one list of connector kinds `hubd` offers. A new connector is one file in this folder
/// and one line here.
public enum BuiltinConnectors {
    public static let all: [any Connector.Type] = [
        FileConnector.self,
        HTTPConnector.self,
    ]

    public static var registry: ConnectorRegistry { ConnectorRegistry(all) }
}
