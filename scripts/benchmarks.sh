#!/usr/bin/env bash
# Runs the benchmarks that BENCHMARKS.md quotes, each as many times as it says (3 by default), one
# after the other on a machine doing nothing else, and keeps their raw output in a directory:
#   scripts/benchmarks.sh [OUT_DIR] [COUNT]
# SQLite figures run with JUNCTION_TEST_BACKENDS=sqlite, PostgreSQL ones with =postgres (a local
# server, TEST_DATABASE_URL as for the tests). Each benchmark compares against a baseline measured in
# the same run; BENCHMARKS.md gives the ranges over the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-$(date -u +%Y%m%dT%H%M%SZ)}
count=${2:-3}
mkdir -p "$out"
run() { # name backend args...
	local name=$1 backend=$2
	shift 2
	echo "== $name ($backend)" | tee -a "$out/summary.txt"
	JUNCTION_TEST_BACKENDS=$backend go test -run '^$' -timeout 60m "$@" ./internal/app/ 2>&1 | tee "$out/$name-$backend.txt" |
		grep -E '^Benchmark|FAIL' | tee -a "$out/summary.txt"
}
run graphql sqlite -bench 'HTTP' -benchtime 3s -count "$count"
run overview sqlite -bench 'Overview' -benchtime 2s -count "$count"
run track sqlite -bench 'IngestTrackOpenLoop' -benchtime 16000x -count "$count"
for backend in sqlite postgres; do
	run batch-vs-bare "$backend" -bench 'IngestBatchVsBare$' -benchtime 2000x -count "$count"
	run batch-with-plan "$backend" -bench 'IngestBatchWithPlan' -benchtime 4000x -count "$count"
	run retention "$backend" -bench 'RetentionAndDeletes' -benchtime 1x -count "$count"
	run delivery "$backend" -bench 'Delivery' -benchtime 1x -count "$count"
	run warehouse-load "$backend" -bench 'WarehouseLoad' -benchtime 1x -count "$count"
	run warehouse-latency "$backend" -bench 'WarehouseLatency' -benchtime 20x -count "$count"
done
run privacy sqlite -bench 'IngestPrivacyDetection' -benchtime 2000x -count "$count"
for backend in sqlite postgres; do
	run engage "$backend" -bench 'EngageLag$' -benchtime 2000x -count "$count"
	run engage-at-rate "$backend" -bench 'EngageLagAtRate' -benchtime 300x -count "$count"
done
run computed-trait-lag sqlite -bench 'ComputedTraitLag' -benchtime 100x -count "$count"
run expiry sqlite -bench 'AuditInboxExpiry' -benchtime 1x -count "$count"
pkg() { # name backend package args...
	local name=$1 backend=$2 pkg=$3
	shift 3
	echo "== $name ($backend)" | tee -a "$out/summary.txt"
	JUNCTION_TEST_BACKENDS=$backend go test -run '^$' -timeout 60m "$@" "$pkg" 2>&1 | tee "$out/$name-$backend.txt" |
		grep -E '^Benchmark|FAIL' | tee -a "$out/summary.txt"
}
pkg writer sqlite ./internal/ingest/ -bench 'WriterStore' -benchmem -count "$count"
pkg computed-traits sqlite ./internal/engage/ -bench 'ComputedTraitPass' -benchtime 1x -count "$count"
for backend in sqlite postgres; do
	pkg audiences "$backend" ./internal/engage/audience/ -bench 'AudienceRecompute|AudienceIncremental' -benchtime 1x -count "$count"
done
run cloudapp sqlite -bench 'CloudAppWebhook' -benchtime 3s -count "$count"
echo "== relay (postgres)" | tee -a "$out/summary.txt"
JUNCTION_TEST_BACKENDS=postgres go test -run '^$' -bench Relay -benchtime 3000x -count "$count" ./internal/replica/ 2>&1 |
	tee "$out/relay-postgres.txt" | grep -E '^Benchmark|ns/op|FAIL' | tee -a "$out/summary.txt"
JUNCTION_FANOUT_SUBSCRIBERS=18000 run fanout sqlite -bench 'SubscriptionFanout' -benchtime 3x -count "$count"
echo "raw output in $out/"
