#!/usr/bin/env bash
# Load test of the tracking API with wrk as a separate process (Debian's wrk package): builds and
# starts the server on a fresh SQLite file, creates a workspace and a source over GraphQL, then
# posts 100-event batches with unique messageIds for DURATION seconds over CONNECTIONS keep-alive
# connections and prints events/s and latency percentiles.
#   scripts/load-ingest.sh [DURATION=20] [CONNECTIONS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
CONNECTIONS=${2:-16}
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 2; }
dir=$(mktemp -d)
go build -o "$dir/junction" .
PORT=18181
"$dir/junction" -addr 127.0.0.1:$PORT -database-url "$dir/db/junction.db" -log-level error -ingest-rate 0 > "$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.1; done
gql() { curl -sf -H 'Content-Type: application/json' ${2:+-H "Authorization: Bearer $2"} -d "$1" localhost:$PORT/graphql; }
tok=$(gql '{"query":"mutation{signUp(input:{email:\"load@example.com\",password:\"correct horse battery\",name:\"Load\"}){token}}"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
ws=$(gql '{"query":"mutation{workspaceCreate(input:{name:\"Load\",slug:\"load\"}){workspace{id}}}"}' "$tok" | sed 's/.*"id":"\([^"]*\)".*/\1/')
key=$(gql "{\"query\":\"mutation{sourceCreate(input:{workspaceId:\\\"$ws\\\",catalogId:\\\"cat_node\\\",name:\\\"Load\\\"}){source{writeKeys{key}}}}\"}" "$tok" | sed 's/.*"key":"\([^"]*\)".*/\1/')
cat > "$dir/batch.lua" <<LUA
local n = 0
local auth = "Basic " .. "$(printf '%s:' "$key" | base64 -w0)"
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  n = n + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format('{"type":"track","userId":"user-%d","event":"Order Completed","messageId":"t%d-r%d-e%d","properties":{"orderId":"o-%d","total":42.5,"currency":"EUR","items":3},"context":{"library":{"name":"load","version":"1"}},"timestamp":"2026-11-27T10:00:00.000Z"}', i, tid, n, i, n)
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"2026-11-27T10:00:00.100Z"}'
  return wrk.format("POST", "/v1/batch", {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("requests: %d, errors: %d (non-2xx %d)\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
  io.write(string.format("events/s: %.0f\n", summary.requests * 100 / (summary.duration / 1e6)))
  for _, p in ipairs({50, 90, 99}) do io.write(string.format("p%d: %.2f ms\n", p, latency:percentile(p) / 1000)) end
end
LUA
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$dir/batch.lua" "http://127.0.0.1:$PORT/v1/batch" | grep -E "requests:|events/s|^p[0-9]|Requests/sec"
stored=$(gql "{\"query\":\"{workspace(slug:\\\"load\\\"){usage(month:\\\"$(date -u +%Y-%m)\\\"){apiCalls}}}\"}" "$tok")
echo "stored (usage.apiCalls): $stored"
