import Foundation
import Testing
import Synchronization
import Hub
@testable import HubPostgres
import HubTesting

/// A real PostgreSQL server for the tests: the one `scripts/test.sh` started (HUB_PG_URL and
/// PGPASSWORD in the environment), else a throwaway cluster this process starts with
/// `scripts/pg-cluster.sh` and stops when it exits. Each store gets a schema of its own.
enum PostgresTestServer {
    struct Server: Sendable { var url: String; var password: String }

    static let server: Server? = {
        let env = ProcessInfo.processInfo.environment
        if let url = env["HUB_PG_URL"], let password = env["PGPASSWORD"] { return Server(url: url, password: password) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = "/tmp/hub-pg-test-\(getpid())"
        let script = root.appendingPathComponent("scripts/pg-cluster.sh").path
        // posix_spawn and waitpid, not Process: Foundation's Process never saw the script end
        // when started from this lazy static (inside swift-testing's trait evaluation).
        guard run("/bin/bash", ["-c", "'\(script)' start '\(dir)' > '\(dir).env' 2> '\(dir).err'"]) == 0,
              let text = try? String(contentsOfFile: dir + ".env", encoding: .utf8) else { return nil }
        unlink(dir + ".env"); unlink(dir + ".err")
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        guard let url = values["HUB_PG_URL"], let password = values["PGPASSWORD"] else { return nil }
        stopScript = (script, dir)
        atexit {
            guard let (script, dir) = PostgresTestServer.stopScript else { return }
            _ = PostgresTestServer.run("/bin/bash", [script, "stop", dir])
        }
        return Server(url: url, password: password)
    }()
    nonisolated(unsafe) static var stopScript: (String, String)?

    /// Runs a program to its end; its exit status.
    static func run(_ path: String, _ arguments: [String]) -> Int32 {
        var pid: pid_t = 0
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawn(&pid, path, nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status >> 8) & 0xFF
    }

    /// Whether the tests can reach a server; `HUB_REQUIRE_POSTGRES=1` (the test command sets
    /// it) turns a missing server into a failure instead of skipped tests.
    static var available: Bool { server != nil || ProcessInfo.processInfo.environment["HUB_REQUIRE_POSTGRES"] == "1" }

    static let counter = Atomic<Int>(0)

    /// The address of a new, empty schema on the test server.
    static func freshURL(_ label: String = "t") throws -> String {
        guard let s = server else { throw StoreError("没有可用的 PostgreSQL 测试服务器（安装 postgresql，或设置 HUB_PG_URL 与 PGPASSWORD）") }
        setenv("PGPASSWORD", s.password, 1)
        let n = counter.add(1, ordering: .relaxed).newValue
        return s.url + (s.url.contains("?") ? "&" : "?") + "schema=\(label)_\(getpid())_\(n)"
    }

    static func store(_ label: String = "t") throws -> PostgresStore {
        try PostgresStore(url: freshURL(label))
    }
}

@Suite(.enabled(if: PostgresTestServer.available, "no PostgreSQL server: install Debian's postgresql (scripts/setup.sh --postgres)"))
struct PostgresStoreTests {
    @Test func thePostgreSQLStorePassesEveryCheck() {
        let failures = StoreConformance(makeStore: { try PostgresTestServer.store("conf") }).run()
        #expect(failures.isEmpty, "\(failures.map(\.description).joined(separator: "\n"))")
    }
}
