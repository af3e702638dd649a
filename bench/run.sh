#!/usr/bin/env bash
# bench/run.sh: measure authlined with `authline bench` against Redis on the
# same machine, in the same run, and print one markdown table.
#
#   bash bench/run.sh                    # default: 10s per workload (~2 min)
#   BENCH_DURATION=5s bash bench/run.sh  # shorter runs
#
# Environment:
#   BENCH_DURATION        duration of each workload (default 10s)
#   BENCH_LOGIN_DURATION  duration of the login workload (default: BENCH_DURATION)
#   BENCH_CONNS           connections of the non-login workloads (default 50)
#   BENCH_LOGIN_CONNS     connections of the login workload (default 64)
#   BENCH_PIPELINE        depth of the pipelined runs (default 16)
#   REDIS_ADDR            Redis to compare with (default 127.0.0.1:6379)
#
# --hash-queue 256: the default queue (32) answers 503 to the set-up logins
# of 50 connections at cost 12, and to a 64-client login flood.
#
# Needs go; jq or python3 to read the JSON results; redis-server for the
# Redis comparison (installed with apt-get when running as root, else the
# Redis rows are skipped).
set -euo pipefail

DURATION=${BENCH_DURATION:-10s}
LOGIN_DURATION=${BENCH_LOGIN_DURATION:-$DURATION}
CONNS=${BENCH_CONNS:-50}
LOGIN_CONNS=${BENCH_LOGIN_CONNS:-64}
PIPELINE=${BENCH_PIPELINE:-16}
REDIS_ADDR=${REDIS_ADDR:-127.0.0.1:6379}
REDIS_HOST=${REDIS_ADDR%:*}
REDIS_PORT=${REDIS_ADDR##*:}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/authline-bench.XXXXXX")
SERVER_PID=""
STARTED_REDIS=0

log() { printf '==> %s\n' "$*" >&2; }

cleanup() {
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	if [[ $STARTED_REDIS == 1 ]]; then
		redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"

# --- build -----------------------------------------------------------------
log "building authlined and authline into $WORK"
go build -o "$WORK/authlined" ./cmd/authlined
go build -o "$WORK/authline" ./cmd/authline

# --- JSON reading: jq, else python3 ------------------------------------------
# summary FILE prints: ok_rps p50_us p99_us p99.9_us errors
# (ok_rps counts successful responses only: errors are excluded)
if command -v jq >/dev/null 2>&1; then
	summary() {
		jq -r '([.errors[]] | add // 0) as $e
			| "\((.requests - $e) / .duration_s) \(.latency_us.p50) \(.latency_us.p99) \(.latency_us.p99_9) \($e)"' "$1"
	}
elif command -v python3 >/dev/null 2>&1; then
	summary() {
		python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
e = sum(r.get("errors", {}).values())
l = r["latency_us"]
print((r["requests"] - e) / r["duration_s"], l["p50"], l["p99"], l["p99_9"], e)' "$1"
	}
else
	echo "bench/run.sh: needs jq or python3 to read the results" >&2
	exit 1
fi

# --- authlined ----------------------------------------------------------------
log "starting authlined on a temporary SQLite store"
"$WORK/authlined" serve --db "$WORK/authline.db" --listen 127.0.0.1:0 \
	--bcrypt-cost 12 --ip-auth-rate 0 --no-login-throttle --max-conns-per-ip 0 --hash-queue 256 \
	--log-level info 2>"$WORK/authlined.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 200); do
	ADDR=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$WORK/authlined.log" | head -n 1)
	[[ -n $ADDR ]] && break
	if ! kill -0 "$SERVER_PID" 2>/dev/null; then
		echo "authlined exited:" >&2
		cat "$WORK/authlined.log" >&2
		exit 1
	fi
	sleep 0.05
done
if [[ -z $ADDR ]]; then
	echo "authlined did not log \"listening\" in 10s:" >&2
	cat "$WORK/authlined.log" >&2
	exit 1
fi
log "authlined listening on $ADDR"

# bench NAME ARGS...: one run, its JSON result in $WORK/NAME.json
bench() {
	local name=$1
	shift
	log "bench $name: $*"
	"$WORK/authline" bench -o json "$@" >"$WORK/$name.json"
}

bench get-session --server "$ADDR" --workload get-session --conns "$CONNS" --duration "$DURATION"
bench get-session-p --server "$ADDR" --workload get-session --conns "$CONNS" --pipeline "$PIPELINE" --duration "$DURATION"
bench get-token --server "$ADDR" --workload get-token --conns "$CONNS" --duration "$DURATION"
bench ping --server "$ADDR" --workload ping --conns "$CONNS" --duration "$DURATION"
bench login --server "$ADDR" --workload login --conns "$LOGIN_CONNS" --duration "$LOGIN_DURATION"
bench mixed --server "$ADDR" --workload mixed --conns "$CONNS" --duration "$DURATION"

kill -TERM "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

# --- Redis --------------------------------------------------------------------
redis_up() {
	if command -v redis-cli >/dev/null 2>&1; then
		redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
	else
		(exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT") 2>/dev/null
	fi
}
REDIS=0
REDIS_NOTE=""
if redis_up; then
	REDIS=1
else
	if ! command -v redis-server >/dev/null 2>&1; then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
			log "installing redis-server with apt-get"
			apt-get install -y redis-server >&2 || true
		fi
	fi
	if command -v redis-server >/dev/null 2>&1; then
		log "starting redis-server on $REDIS_ADDR"
		redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no >&2
		STARTED_REDIS=1
		for _ in $(seq 1 100); do
			redis_up && break
			sleep 0.05
		done
		redis_up && REDIS=1
	fi
	if [[ $REDIS == 0 ]]; then
		REDIS_NOTE="Redis not available on $REDIS_ADDR (redis-server missing and not root, or it did not start): Redis ratios skipped."
		log "$REDIS_NOTE"
	fi
fi
if [[ $REDIS == 1 ]]; then
	bench redis-ping --server "$REDIS_ADDR" --raw PING --conns "$CONNS" --duration "$DURATION"
	bench redis-ping-p --server "$REDIS_ADDR" --raw PING --conns "$CONNS" --pipeline "$PIPELINE" --duration "$DURATION"
fi

# --- bcrypt limit ---------------------------------------------------------------
log "measuring bcrypt at cost 12 (go test -bench BenchmarkBcryptCost12 ./server/auth)"
go test -run '^$' -bench 'BenchmarkBcryptCost12$' -benchtime 2s ./server/auth >"$WORK/bcrypt.txt"
BCRYPT_NS=$(awk '/^BenchmarkBcryptCost12/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") { print $i; exit } }' "$WORK/bcrypt.txt")
CORES=$(nproc)
BCRYPT_LIMIT=$(awk -v c="$CORES" -v ns="$BCRYPT_NS" 'BEGIN { printf "%.1f", c * 1e9 / ns }')

# --- table ------------------------------------------------------------------------
declare -A RPS P50 P99 P999 ERR
for name in get-session get-session-p get-token ping login mixed redis-ping redis-ping-p; do
	[[ -f $WORK/$name.json ]] || continue
	read -r RPS[$name] P50[$name] P99[$name] P999[$name] ERR[$name] < <(summary "$WORK/$name.json")
done

ratio() { # ratio A B: A/B with two decimals, or "n/a"
	if [[ -z ${1:-} || -z ${2:-} ]]; then
		echo "n/a"
	else
		awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
	fi
}
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }

row() { # row NAME LABEL RATIO
	local n=$1
	local rps
	rps=$(awk -v r="${RPS[$n]}" 'BEGIN { if (r < 100) printf "%.1f", r; else printf "%.0f", r }')
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$rps" "$(ms "${P50[$n]}")" "$(ms "${P99[$n]}")" "$(ms "${P999[$n]}")" "${ERR[$n]}" "$3"
}

CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo
echo "Machine: ${CORES} cores (nproc), ${CPU:-unknown CPU}; $(go version | awk '{ print $3, $4 }'); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "Run: duration ${DURATION} per workload (login ${LOGIN_DURATION}), ${CONNS} connections (login ${LOGIN_CONNS}), pipeline ${PIPELINE}; authlined --bcrypt-cost 12 --ip-auth-rate 0 --no-login-throttle --max-conns-per-ip 0 --hash-queue 256, SQLite store"
echo "bcrypt cost 12: ${BCRYPT_NS} ns/hash (BenchmarkBcryptCost12) -> limit ${CORES} / $(awk -v ns="$BCRYPT_NS" 'BEGIN { printf "%.4f", ns / 1e9 }') s = ${BCRYPT_LIMIT} hashes/s"
[[ -n $REDIS_NOTE ]] && echo "$REDIS_NOTE"
echo
echo "| workload | requests/s (ok) | p50 ms | p99 ms | p99.9 ms | errors | ratio |"
echo "|---|---:|---:|---:|---:|---:|---|"
row get-session "get-session, ${CONNS} conns" "$(ratio "${RPS[get-session]}" "${RPS[redis-ping]:-}") × Redis PING"
row get-session-p "get-session, ${CONNS} conns, pipeline ${PIPELINE}" "$(ratio "${RPS[get-session-p]}" "${RPS[redis-ping-p]:-}") × Redis PING -P ${PIPELINE}"
row get-token "get-token, ${CONNS} conns" "$(ratio "${RPS[get-token]}" "${RPS[get-session]}") × session GET"
row ping "ping, ${CONNS} conns" "$(ratio "${RPS[ping]}" "${RPS[redis-ping]:-}") × Redis PING"
row login "login (cost 12), ${LOGIN_CONNS} conns" "$(ratio "${RPS[login]}" "$BCRYPT_LIMIT") × bcrypt limit (${BCRYPT_LIMIT}/s)"
row mixed "mixed, ${CONNS} conns" "—"
if [[ $REDIS == 1 ]]; then
	row redis-ping "Redis PING (raw), ${CONNS} conns" "baseline"
	row redis-ping-p "Redis PING (raw), ${CONNS} conns, pipeline ${PIPELINE}" "baseline"
fi
