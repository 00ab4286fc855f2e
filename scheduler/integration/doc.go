// Package integration holds Cassata's integration tests: the scheduler, the
// worker and the Redis store run against a real redis-server (started per
// test by internal/redistest) and deliver to HTTP destinations on
// 127.0.0.1. They check what a user would notice: requests arrive with the
// right content, never before their due time, exactly once when nothing
// fails and again after a worker dies, and retries follow the policy.
//
// Without redis-server on PATH the tests skip, unless CASSATA_REQUIRE_REDIS=1.
package integration
