// Package chaos is kastor's fault suite (issue 14). It holds tests only; this file
// documents them.
//
// Each test runs the bank example (examples/bank) as it is deployed: three `bank gateway`
// processes with the library's default settings, built once from the working tree, on a
// fresh namespace of a Kafka cluster that kafkatest starts (published on 127.0.0.1 only).
// Eight workers in the test process drive 200 accounts through gateway.Sender the way a
// careful application does: three seconds per attempt; a timed-out, expired or unavailable
// command sent again with the same command ID, up to eight times; a command still without
// an answer settled with Sender.Outcome. Probes ask every shard a harmless question
// (Sender.Outcome of a command that does not exist) every 300 ms, so that each shard's
// availability is timed even when no worker happens to be sending to it. Meanwhile the
// test injects faults, each once the previous one's shards answer again:
//
//   - TestChaosSingleBroker: one broker; a gateway killed with SIGKILL and restarted at
//     once, under its old instance name or a new one, a few seconds apart; and once a
//     gateway stopped with SIGSTOP well past its session timeout, then resumed (a zombie
//     that believes it still owns its shards, with a transaction open).
//   - TestChaosThreeBrokers: three brokers, topics with replication factor 3 and
//     min.insync.replicas=2; brokers killed with SIGKILL (the gateways' group coordinator
//     first) and restarted, alternating with gateway kills.
//
// Afterwards the log is the judge. The events topic is read back with a plain
// read_committed client and checked against everything the callers were told: (a) every
// account's versions are 1..n; (b) every command ID was executed at most once, by a
// command a caller sent, with the command's own payload; (c) every outcome a caller was
// told is the log's: versions for a success, no event for a refusal or for "no outcome";
// (d) every balance folded from the log equals the sum of the acknowledged deposits and
// withdrawals; (e) nothing the zombie's fenced producer could still write after it resumed
// is committed. The failover figures are logged: for each fault, the time to the dead
// shards' first answer and until every one of them answered, the survivors' latency and
// longest silence meanwhile against the no-fault baseline, and each shard's longest
// silence. A killed or stopped gateway's shards must answer again within 15 s (W6: 10 s
// with the defaults, plus slack for CI), and after a broker outage every shard again.
// checks_selftest_test.go shows that each check fails on a log with the defect it is for.
//
// The fault phase lasts CHAOS_DURATION per test (a Go duration; default 60s, so that
// `make test` grows by about four minutes); `make chaos` runs both tests for 5 minutes
// each. CHAOS_SEED replays a run's random choices (the seed is logged); CHAOS_LOG_DIR keeps
// the gateways' logs and every attempt's timing (attempts.csv). The tests skip under
// -short, and without Docker unless CI or KASTOR_REQUIRE_DOCKER is set (see kafkatest).
package chaos
