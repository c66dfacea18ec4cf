import Foundation
import XCTest

@testable import PGProbeCore

/// A generator that always returns the same word: the draw is chosen by the test.
struct FixedGenerator: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

final class OperationMixTests: XCTestCase {
    func testPercentagesMustSumTo100AndSayWhatTheyGot() throws {
        XCTAssertThrowsError(try OperationMix(insert: 50, update: 30, delete: 30)) { error in
            XCTAssertEqual(
                "\(error)",
                "--insert-percent, --update-percent and --delete-percent must sum to 100 (got 50 + 30 + 30 = 110)")
        }
        XCTAssertThrowsError(try OperationMix(insert: -10, update: 60, delete: 50)) { error in
            XCTAssertEqual("\(error)", "--insert-percent must be between 0 and 100 (got -10)")
        }
        let mix = try OperationMix(insert: 50, update: 30, delete: 20)
        XCTAssertEqual((0..<100).map { mix.kind(roll: $0) }.filter { $0 == .insert }.count, 50)
        XCTAssertEqual((0..<100).map { mix.kind(roll: $0) }.filter { $0 == .update }.count, 30)
        XCTAssertEqual(mix.kind(roll: 99), .delete)
    }

    func testAnUpdateOrDeleteWithNoRowBecomesAnInsertAndSeqsNumberEveryOperation() throws {
        var model = WorkerModel(worker: 0)
        var rng = FixedGenerator(value: .max)  // the highest roll: a delete
        let mix = try OperationMix(insert: 0, update: 0, delete: 100)
        let first = model.plan(mix: mix, using: &rng)
        XCTAssertEqual(first, PlannedOperation(seq: 1, kind: .insert, rowID: 1), "no row to delete yet")
        XCTAssertEqual(model.acknowledged(first, rowsAffected: 1), .acked)
        let second = model.plan(mix: mix, using: &rng)
        XCTAssertEqual(second, PlannedOperation(seq: 2, kind: .delete, rowID: 1))
        XCTAssertEqual(model.acknowledged(second, rowsAffected: 1), .acked)
        XCTAssertEqual(model.rows, [:])
        // Warm-up only inserts, whatever the mix.
        XCTAssertEqual(model.plan(mix: mix, insertOnly: true, using: &rng).kind, .insert)
    }

    func testAnUpdateThatFindsNoRowIsMissingAndTheRowLeavesTheModel() {
        var model = WorkerModel(worker: 0)
        _ = model.acknowledged(PlannedOperation(seq: 1, kind: .insert, rowID: 1), rowsAffected: 1)
        XCTAssertEqual(model.acknowledged(PlannedOperation(seq: 2, kind: .update, rowID: 1), rowsAffected: 0), .missing)
        XCTAssertEqual(model.rows, [:])
    }

    func testIndeterminateOperationsResolveFromTheRowAsThePrimaryHasIt() {
        var model = WorkerModel(worker: 0)
        _ = model.acknowledged(PlannedOperation(seq: 1, kind: .insert, rowID: 7), rowsAffected: 1)
        let update = PlannedOperation(seq: 2, kind: .update, rowID: 7)
        XCTAssertEqual(model.resolve(update, version: 1), .notApplied)
        XCTAssertEqual(model.rows, [7: 1])
        XCTAssertEqual(model.resolve(update, version: 2), .applied)
        XCTAssertEqual(model.rows, [7: 2])
        let delete = PlannedOperation(seq: 3, kind: .delete, rowID: 7)
        XCTAssertEqual(model.resolve(delete, version: 2), .notApplied)
        XCTAssertEqual(model.resolve(delete, version: nil), .applied)
        XCTAssertEqual(model.rows, [:])
        XCTAssertEqual(model.resolve(PlannedOperation(seq: 4, kind: .insert, rowID: 8), version: nil), .notApplied)
        XCTAssertEqual(model.resolve(PlannedOperation(seq: 5, kind: .insert, rowID: 9), version: 5), .applied)
        XCTAssertEqual(model.rows, [9: 5])
    }
}

final class DataLossTests: XCTestCase {
    func entry(_ seq: Int64, _ kind: OperationKind, row: Int64, _ status: OperationStatus = .acked, _ resolution: Resolution? = nil, at: Double? = nil)
        -> LedgerEntry
    {
        LedgerEntry(
            worker: 0, operation: PlannedOperation(seq: seq, kind: kind, rowID: row), status: status, resolution: resolution,
            atSeconds: at ?? Double(seq))
    }

    func testLostInsertsUpdatesAndDeletesAreCountedByKind() {
        let ledger = [
            entry(1, .insert, row: 1), entry(2, .update, row: 1), entry(3, .update, row: 1),  // row 1 rolled back to v2
            entry(4, .insert, row: 2), entry(5, .delete, row: 2),  // the delete lost: row 2 still there
            entry(6, .insert, row: 3), entry(7, .update, row: 3),  // row 3 gone entirely
            entry(8, .insert, row: 4), entry(9, .delete, row: 4),  // deleted as acknowledged
            entry(10, .insert, row: 5),  // intact
        ]
        var loss = DataLoss()
        loss.add(entries: ledger, actual: [1: 2, 2: 4, 5: 10])
        XCTAssertEqual(loss.lostInserts, 1)
        XCTAssertEqual(loss.lostUpdates, 2)
        XCTAssertEqual(loss.lostDeletes, 1)
        XCTAssertEqual(loss.total, 4)
        XCTAssertEqual(loss.lost.map(\.operation.seq), [3, 5, 6, 7])
        // Outage at 8.5 s: the newest lost commit (seq 7, 7 s) was 1.5 s old, the oldest (3 s) 5.5 s.
        let ages = loss.lostAgesMilliseconds(outageStarts: [8.5], endSeconds: 20)
        XCTAssertEqual(ages.newest ?? -1, 1500, accuracy: 1e-6)
        XCTAssertEqual(ages.oldest ?? -1, 5500, accuracy: 1e-6)
    }

    func testIndeterminateAndMissingOperationsAreNeverLost() {
        let ledger = [
            entry(1, .insert, row: 1, .indeterminate, .applied),  // applied, then lost: not counted
            entry(2, .insert, row: 2), entry(3, .update, row: 2, .indeterminate, .notApplied),
            entry(4, .insert, row: 3), entry(5, .delete, row: 3, .indeterminate, .applied),
            entry(6, .update, row: 9, .missing),
        ]
        var loss = DataLoss()
        loss.add(entries: ledger, actual: [2: 2])
        XCTAssertEqual(loss.total, 0, "\(loss.lost)")
        XCTAssertEqual(loss.lostAgesMilliseconds(outageStarts: [], endSeconds: 9).newest, nil)
        let counts = IndeterminateCounts(entries: ledger + [entry(7, .insert, row: 4, .indeterminate)])
        XCTAssertEqual([counts.total, counts.applied, counts.not_applied, counts.unresolved], [4, 2, 1, 1])
    }

    func testValidationTextAndDifferingIDs() {
        XCTAssertEqual(FailoverRows.payload(id: 3, version: 12).count, FailoverRows.payloadBytes)
        XCTAssertTrue(FailoverRows.validationText([2: 5, 1: 1]).hasPrefix("1:1:row 1 v1 ...."))
        XCTAssertEqual(FailoverRows.differingIDs(expected: [1: 1, 2: 5, 3: 3], actual: [1: 1, 2: 4, 4: 4]), [2, 3, 4])
    }
}

final class FailoverTimelineTests: XCTestCase {
    func testOneFailoverSeenByTwoWorkers() throws {
        var timeline = FailoverTimeline()
        timeline.record(worker: 0, .acked(at: 1.0))
        timeline.record(worker: 1, .acked(at: 1.2))
        timeline.record(worker: 0, .failed(at: 1.3))
        timeline.record(worker: 1, .failed(at: 1.5))
        timeline.record(worker: 0, .connected(at: 5.0, readWrite: false))  // the old primary, now a replica
        timeline.record(worker: 1, .connected(at: 9.0, readWrite: true))
        timeline.record(worker: 0, .connected(at: 9.5, readWrite: true))
        XCTAssertEqual(timeline.workersDown, 2)
        timeline.record(worker: 1, .acked(at: 9.1))
        timeline.record(worker: 0, .acked(at: 9.6))
        timeline.record(worker: 0, .acked(at: 9.7))
        let failovers = timeline.failovers
        XCTAssertEqual(failovers.count, 1)
        let failover = try XCTUnwrap(failovers.first)
        XCTAssertEqual(failover.startedAt, 1.3)
        XCTAssertEqual(failover.serviceAvailable ?? -1, 3.7, accuracy: 1e-9)
        XCTAssertEqual(failover.readWrite ?? -1, 7.7, accuracy: 1e-9)
        XCTAssertEqual(failover.firstWrite ?? -1, 7.8, accuracy: 1e-9)
        XCTAssertEqual(failover.rto ?? -1, 8.6, accuracy: 1e-9, "worker 0: 1.0 → 9.6")
        XCTAssertEqual(failover.workers.map(\.rto), [9.6 - 1.0, 9.1 - 1.2])
        let json = FailoverJSON(failover)
        XCTAssertEqual(json.workers[0].service_available_s ?? -1, 3.7, accuracy: 1e-9)
        XCTAssertEqual(json.workers[1].read_write_s ?? -1, 7.5, accuracy: 1e-9)
    }

    func testSeparateOutagesAreSeparateFailoversAndAnUnrecoveredOneHasNoRTO() {
        var timeline = FailoverTimeline()
        timeline.record(worker: 0, .acked(at: 1))
        timeline.record(worker: 0, .failed(at: 2))
        timeline.record(worker: 0, .acked(at: 3))
        timeline.record(worker: 1, .acked(at: 3))
        timeline.record(worker: 0, .failed(at: 10))
        timeline.record(worker: 1, .failed(at: 11))
        let failovers = timeline.failovers
        XCTAssertEqual(failovers.map(\.startedAt), [2, 10])
        XCTAssertEqual(failovers[0].rto, 2)
        XCTAssertNil(failovers[1].rto)
        XCTAssertEqual(failovers[1].workers.map(\.lastAckedAt), [3, 3])
        // 2 s down plus the open outage from 3 s to the end (20 s) out of 20 s.
        XCTAssertEqual(FailoverSummary.availability(failovers: failovers, endSeconds: 20, measuredSeconds: 20) ?? -1, 5, accuracy: 1e-9)
    }

    func testSummaryJSONKeysAndNulls() throws {
        var timeline = FailoverTimeline()
        timeline.record(worker: 0, .acked(at: 1))
        timeline.record(worker: 0, .failed(at: 2))
        let summary = FailoverSummary(
            duration_s: 10, operations_acked: 5, operations_failed: 1, operations_per_s: 0.5, availability_percent: nil,
            failovers: timeline.failovers.map(FailoverJSON.init), rpo: nil, indeterminate: IndeterminateCounts(),
            validation: nil)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any])
        for key in ["operations_acked", "failovers", "rpo", "indeterminate", "validation"] {
            XCTAssertNotNil(object[key], "key \(key)")
        }
        XCTAssertTrue(object["rpo"] is NSNull)
        let failover = try XCTUnwrap((object["failovers"] as? [[String: Any]])?.first)
        for key in ["started_at_s", "service_available_s", "read_write_s", "rto_s", "workers"] {
            XCTAssertNotNil(failover[key], "failover key \(key)")
        }
        XCTAssertTrue(failover["rto_s"] is NSNull)
        XCTAssertTrue((failover["workers"] as? [[String: Any]])?.first?["rto_s"] is NSNull)
        let indeterminate = try XCTUnwrap(object["indeterminate"] as? [String: Any])
        XCTAssertEqual(Set(indeterminate.keys), ["total", "applied", "not_applied", "unresolved"])
        XCTAssertTrue(summary.boxLines.contains { $0.contains("DATA LOSS NOT CHECKED") }, summary.boxLines.joined(separator: "\n"))
    }

    func testTheBoxSaysNoDataLossAndIsRectangular() {
        var loss = DataLoss()
        loss.add(entries: [], actual: [:])
        let summary = FailoverSummary(
            duration_s: 30, operations_acked: 12_345, operations_failed: 2, operations_per_s: 411.5, availability_percent: 95.5,
            failovers: [], rpo: RPOJSON(loss, outageStarts: [], endSeconds: 30), indeterminate: IndeterminateCounts(),
            validation: [TableValidation(table: "t", count: 3, expected_count: 3, md5_match: true, first_differing_ids: [])])
        let lines = summary.boxLines
        XCTAssertEqual(Set(lines.map(\.count)).count, 1, lines.joined(separator: "\n"))
        XCTAssertTrue(lines.contains { $0.contains("NO DATA LOSS") })
        XCTAssertTrue(lines.contains { $0.contains("12,345 acked") })
        XCTAssertTrue(lines.contains { $0.contains("1 tables match") })
    }
}

final class MultiHostDSNTests: XCTestCase {
    func testAURIWithSeveralHostsKeepsEachPortInOrder() throws {
        let dsn = try DSN(
            parsing: "postgres://postgres@127.0.0.1:5433,127.0.0.1:5434/postgres?sslmode=disable&target_session_attrs=read-write")
        XCTAssertEqual(dsn.endpoints, [.init(host: "127.0.0.1", port: 5433), .init(host: "127.0.0.1", port: 5434)])
        XCTAssertEqual(dsn.host, "127.0.0.1")
        XCTAssertEqual(dsn.port, 5433)
        XCTAssertEqual(dsn.redacted, "postgres@127.0.0.1:5433,127.0.0.1:5434/postgres")
        XCTAssertEqual(dsn.at(dsn.endpoints[1]).port, 5434)
        XCTAssertEqual(dsn.at(dsn.endpoints[1]).endpoints.count, 1)
    }

    func testTheKeywordFormTakesOnePortOrOnePerHost() throws {
        XCTAssertEqual(
            try DSN(parsing: "host=a,b port=7").endpoints, [.init(host: "a", port: 7), .init(host: "b", port: 7)])
        XCTAssertEqual(
            try DSN(parsing: "host=a,b port=7,8").endpoints, [.init(host: "a", port: 7), .init(host: "b", port: 8)])
        XCTAssertThrowsError(try DSN(parsing: "host=a,b,c port=7,8")) { error in
            XCTAssertEqual("\(error)", "bad DSN: 3 hosts but 2 ports (give one port, or one per host)")
        }
        XCTAssertThrowsError(try DSN(parsing: "host=a target_session_attrs=writable")) { error in
            XCTAssertTrue("\(error)".contains("target_session_attrs=writable is not one of"), "\(error)")
        }
        XCTAssertEqual(try DSN(parsing: "postgres://u@h1,h2:6000/db").endpoints, [.init(host: "h1", port: 5432), .init(host: "h2", port: 6000)])
    }
}
