#!/usr/bin/env bash
# bench/run.sh: measure authlined with `authline bench` against Redis on the
# same machine, in the same run, and print one markdown table (and the
# targets it measures, met or not).
#
#   bash bench/run.sh                    # default: 10s per workload (~5 min)
#   BENCH_DURATION=5s bash bench/run.sh  # shorter runs
#   BENCH_PHASES="flood idle" bash bench/run.sh   # only some phases
#
# Phases (BENCH_PHASES, default all, in this order):
#   load     authlined workloads: get-session, get-token, ping,
#            get-session pipelined, mixed, login (cost 12, 64 clients)
#   redis    the same generator in raw mode against Redis: PING before
#            get-session and after ping, pipelined PING after the
#            pipelined get-session (inside load when both run)
#   flood    session GETs at a fixed rate during a 64-client LOGIN flood,
#            for three configurations of authlined (see FLOOD_CONFIGS)
#   idle     RSS per idle logged-in connection at 10,000 connections,
#            authlined and Redis
#   startup  time from starting authlined to its first greeting, with
#            100,000 users in the store (and with an empty store, and with
#            --bcrypt-cost 4), with bench/seed and bench/startup
#   alloc    go test -bench . -benchmem ./server/ (allocations per request)
#   bcrypt   one bcrypt hash at cost 12, for the LOGIN limit (always run
#            when load or flood is)
#
# Environment:
#   BENCH_DURATION        duration of each workload (default 10s)
#   BENCH_LOGIN_DURATION  duration of the login workload (default: BENCH_DURATION)
#   BENCH_CONNS           connections of the load workloads (default 50)
#   BENCH_LOGIN_CONNS     connections of the login workloads (default 64)
#   BENCH_PIPELINE        depth of the pipelined runs (default 16)
#   BENCH_FLOOD_DURATION  measured time of each flood run (default: BENCH_DURATION)
#   BENCH_FLOOD_WARMUP    time before the flood's measurement starts (default 2s)
#   BENCH_WARMUP          unmeasured time before each load and Redis workload (default 2s)
#   BENCH_FLOOD_GET_CONNS connections sending session GETs during the flood (default 10)
#   BENCH_FLOOD_GET_RATE  their requests/s, in all (default 1000)
#   BENCH_FLOOD_CONFIGS   authlined configurations of the flood (see FLOOD_CONFIGS)
#   BENCH_IDLE_CONNS      idle connections (default 10000)
#   BENCH_IDLE_WAIT       seconds idle before the last RSS reading (default 15)
#   BENCH_STARTUP_USERS   users in the startup store (default 100000)
#   BENCH_STARTUP_RUNS    measured starts (default 5; the median is reported)
#   REDIS_ADDR            Redis to compare with (default 127.0.0.1:6379)
#
# authlined runs with the limits opened for load: --ip-auth-rate 0
# --no-login-throttle --max-conns-per-ip 0, and --hash-queue 256 because
# the default queue (32) answers 503 to a 64-client login flood.
#
# Needs go; jq or python3 to read the JSON results; redis-server for the
# Redis comparison (installed with apt-get when running as root, else the
# Redis rows are skipped). Every authlined listens on 127.0.0.1:0.
set -euo pipefail

DURATION=${BENCH_DURATION:-10s}
LOGIN_DURATION=${BENCH_LOGIN_DURATION:-$DURATION}
CONNS=${BENCH_CONNS:-50}
LOGIN_CONNS=${BENCH_LOGIN_CONNS:-64}
PIPELINE=${BENCH_PIPELINE:-16}
FLOOD_DURATION=${BENCH_FLOOD_DURATION:-$DURATION}
FLOOD_WARMUP=${BENCH_FLOOD_WARMUP:-2s}
WARMUP=${BENCH_WARMUP:-2s}
FLOOD_GET_CONNS=${BENCH_FLOOD_GET_CONNS:-10}
FLOOD_GET_RATE=${BENCH_FLOOD_GET_RATE:-1000}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
IDLE_WAIT=${BENCH_IDLE_WAIT:-15}
STARTUP_USERS=${BENCH_STARTUP_USERS:-100000}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-5}
PHASES=" ${BENCH_PHASES:-load redis flood idle startup alloc} "
REDIS_ADDR=${REDIS_ADDR:-127.0.0.1:6379}
REDIS_HOST=${REDIS_ADDR%:*}
REDIS_PORT=${REDIS_ADDR##*:}

# The flood configurations: name|environment of authlined (VAR=VALUE, or -
# for none)|authlined flags; BENCH_FLOOD_CONFIGS replaces them, separated
# by ";".
FLOOD_CONFIGS=(
	"default|-|"
	"GOMAXPROCS=2 (no spare scheduler slot)|GOMAXPROCS=2|"
	"hash-workers 1|-|--hash-workers 1"
)
if [[ -n ${BENCH_FLOOD_CONFIGS:-} ]]; then
	IFS=';' read -r -a FLOOD_CONFIGS <<<"$BENCH_FLOOD_CONFIGS"
fi

# Options of every authlined of the load and flood phases.
SERVE_OPTS=(--bcrypt-cost 12 --ip-auth-rate 0 --no-login-throttle --max-conns-per-ip 0 --hash-queue 256 --log-level info)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/authline-bench.XXXXXX")
SERVER_PID=""
BG_PIDS=()
STARTED_REDIS=0
REDIS_MAXCLIENTS=""

log() { printf '==> %s\n' "$*" >&2; }
phase() { [[ $PHASES == *" $1 "* ]]; }

cleanup() {
	for pid in "${BG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	stop_server
	if [[ -n $REDIS_MAXCLIENTS ]]; then
		redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" config set maxclients "$REDIS_MAXCLIENTS" >/dev/null 2>&1 || true
	fi
	if [[ $STARTED_REDIS == 1 ]]; then
		redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"

# --- file descriptors: 10,000 idle connections need more than that in both
# the server and the client ---------------------------------------------------
want_fds=$((IDLE_CONNS + 1024))
if (($(ulimit -n) < want_fds)); then
	ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
if phase idle && (($(ulimit -n) < IDLE_CONNS + 100)); then
	log "ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)), too low for $IDLE_CONNS connections: idle phase skipped (run as root, or lower BENCH_IDLE_CONNS)"
	PHASES=${PHASES/ idle / }
fi

# --- build -----------------------------------------------------------------
log "building authlined, authline, bench/seed and bench/startup into $WORK"
go build -o "$WORK/authlined" ./cmd/authlined
go build -o "$WORK/authline" ./cmd/authline
go build -o "$WORK/seed" ./bench/seed
go build -o "$WORK/startup" ./bench/startup

# --- JSON reading: jq, else python3 ------------------------------------------
# summary FILE prints: ok_rps p50_us p99_us p99.9_us errors setup_s
# (ok_rps counts successful responses only: errors are excluded)
if command -v jq >/dev/null 2>&1; then
	summary() {
		jq -r '([.errors[]] | add // 0) as $e
			| "\(if .duration_s > 0 then (.requests - $e) / .duration_s else 0 end) \(.latency_us.p50) \(.latency_us.p99) \(.latency_us.p99_9) \($e) \(.setup_s)"' "$1"
	}
	jfield() { jq -r ".$2" "$1"; } # jfield FILE FIELD: a top-level field
elif command -v python3 >/dev/null 2>&1; then
	summary() {
		python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
e = sum(r.get("errors", {}).values())
l = r["latency_us"]
d = r["duration_s"]
print((r["requests"] - e) / d if d > 0 else 0, l["p50"], l["p99"], l["p99_9"], e, r["setup_s"])' "$1"
	}
	jfield() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
else
	echo "bench/run.sh: needs jq or python3 to read the results" >&2
	exit 1
fi

# --- authlined ----------------------------------------------------------------
# start_server NAME ENV ARGS...: start authlined on a new store
# $WORK/NAME.db, with ENV ("-" for none, else VAR=VALUE) in its
# environment; sets SERVER_PID and ADDR.
start_server() {
	local name=$1 env=$2
	shift 2
	local logf="$WORK/$name.log"
	local envs=()
	[[ $env != - ]] && envs=("$env")
	env "${envs[@]}" "$WORK/authlined" serve --db "$WORK/$name.db" --listen 127.0.0.1:0 "$@" 2>"$logf" &
	SERVER_PID=$!
	ADDR=""
	for _ in $(seq 1 400); do
		ADDR=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$logf" | head -n 1)
		[[ -n $ADDR ]] && break
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "authlined exited:" >&2
			cat "$logf" >&2
			exit 1
		fi
		sleep 0.05
	done
	if [[ -z $ADDR ]]; then
		echo "authlined did not log \"listening\" in 20s:" >&2
		cat "$logf" >&2
		exit 1
	fi
	log "authlined ($name$([[ $env != - ]] && echo ", $env")) listening on $ADDR"
}

stop_server() {
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	SERVER_PID=""
}

# cpu_ticks PID: user+system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wait_quiet PID: wait (at most 30s) until the process used under 5% of a
# CPU over half a second: a workload's abandoned requests (LOGINs queued
# for bcrypt) must not spill into the next workload.
wait_quiet() {
	local hz a b
	hz=$(getconf CLK_TCK)
	for _ in $(seq 1 60); do
		a=$(cpu_ticks "$1")
		sleep 0.5
		b=$(cpu_ticks "$1")
		(((b - a) * 100 < hz * 5 / 2)) && return 0
	done
	log "warning: the server is still busy after 30s"
}

# rss_kib PID: resident set size (VmRSS) in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# bench NAME ARGS...: one run, its JSON result in $WORK/NAME.json
bench() {
	local name=$1
	shift
	log "bench $name: $*"
	# --timeout: the set-up logins wait behind each other (cost 12); a
	# request of a run with --duration is cut at the window's end anyway.
	if ! "$WORK/authline" bench -o json --timeout 60s "$@" >"$WORK/$name.json"; then
		# With -o json, a failure is a JSON object on stdout.
		echo "bench/run.sh: bench $name failed: $(cat "$WORK/$name.json")" >&2
		exit 1
	fi
}

# wait_file FILE PID: wait until FILE exists, failing if PID exits first.
wait_file() {
	while [[ ! -e $1 ]]; do
		if ! kill -0 "$2" 2>/dev/null; then
			wait "$2" || true
			echo "bench/run.sh: the bench run exited before being set up" >&2
			exit 1
		fi
		sleep 0.02
	done
}

# --- Redis ------------------------------------------------------------------------
redis_up() {
	if command -v redis-cli >/dev/null 2>&1; then
		redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
	else
		(exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT") 2>/dev/null
	fi
}
REDIS=0
REDIS_NOTE=""
if phase redis || phase idle; then
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
			redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no \
				--maxclients $((IDLE_CONNS + 100)) >&2
			STARTED_REDIS=1
			for _ in $(seq 1 100); do
				redis_up && break
				sleep 0.05
			done
			redis_up && REDIS=1
		fi
		if [[ $REDIS == 0 ]]; then
			REDIS_NOTE="Redis not available on $REDIS_ADDR (redis-server missing and not root, or it did not start): Redis rows skipped."
			log "$REDIS_NOTE"
		fi
	fi
fi
# --- load ---------------------------------------------------------------------
# Redis PING is measured next to the workloads it is compared with: before
# and after the unpipelined ones (the ratio takes the mean of the two), and
# right after the pipelined one. On a shared machine the load drifts over
# minutes; measured side by side, both sides of a ratio see the same.
redis_bench() { # redis_bench NAME [ARGS...]: Redis PING, if Redis is here and the phase is on
	if [[ $REDIS == 1 ]] && phase redis; then
		local name=$1
		shift
		bench "$name" --server "$REDIS_ADDR" --raw PING --conns "$CONNS" --warmup "$WARMUP" --duration "$DURATION" "$@"
	fi
}
if phase load; then
	start_server load - "${SERVE_OPTS[@]}"
	redis_bench redis-ping-before
	bench get-session --server "$ADDR" --workload get-session --conns "$CONNS" --warmup "$WARMUP" --duration "$DURATION"
	bench get-token --server "$ADDR" --workload get-token --conns "$CONNS" --warmup "$WARMUP" --duration "$DURATION"
	bench ping --server "$ADDR" --workload ping --conns "$CONNS" --warmup "$WARMUP" --duration "$DURATION"
	redis_bench redis-ping-after
	bench get-session-p --server "$ADDR" --workload get-session --conns "$CONNS" --pipeline "$PIPELINE" --warmup "$WARMUP" --duration "$DURATION"
	redis_bench redis-ping-p --pipeline "$PIPELINE"
	bench mixed --server "$ADDR" --workload mixed --conns "$CONNS" --warmup "$WARMUP" --duration "$DURATION"
	# The LOGINs that mixed left in the hash queue would slow the login run.
	wait_quiet "$SERVER_PID"
	bench login --server "$ADDR" --workload login --conns "$LOGIN_CONNS" --warmup "$WARMUP" --duration "$LOGIN_DURATION"
	stop_server
else
	redis_bench redis-ping-before
	redis_bench redis-ping-p --pipeline "$PIPELINE"
fi

# --- flood: session GETs at a fixed rate during a login flood ----------------------
FLOOD_NAME=() # by run number, from 1
# The GET run logs its connections in first (before the flood, so that its
# logins do not wait behind the flood's), writes its ready file, then runs
# --warmup unmeasured and --duration measured; the flood starts at the
# ready file with the same warm-up and duration, so both measure nearly the
# same window (the flood's starts a REGISTER later, ~0.3s).
# The GETs come at a fixed rate, not as fast as possible: a closed loop
# would take the CPU that the flood needs (and the target is about their
# latency, not their number). The generator runs on the same cores as the
# server: 2000 GETs/s cost ~12% of a CPU in authlined and ~21% in the
# generator (measured on 2 cores), which alone would hold LOGIN under 0.85
# of the bcrypt limit; 1000/s costs half that.
if phase flood; then
	i=0
	for cfg in "${FLOOD_CONFIGS[@]}"; do
		IFS='|' read -r cname cenv cflags <<<"$cfg"
		i=$((i + 1))
		# shellcheck disable=SC2086 # cflags: words on purpose
		start_server "flood$i" "$cenv" "${SERVE_OPTS[@]}" $cflags
		rm -f "$WORK/flood$i.ready"
		bench "flood$i-get" --server "$ADDR" --workload get-session --conns "$FLOOD_GET_CONNS" --rate "$FLOOD_GET_RATE" \
			--warmup "$FLOOD_WARMUP" --duration "$FLOOD_DURATION" --ready-file "$WORK/flood$i.ready" &
		get_pid=$!
		BG_PIDS=("$get_pid")
		wait_file "$WORK/flood$i.ready" "$get_pid"
		bench "flood$i-login" --server "$ADDR" --workload login --conns "$LOGIN_CONNS" \
			--warmup "$FLOOD_WARMUP" --duration "$FLOOD_DURATION" --timeout 120s &
		login_pid=$!
		BG_PIDS=("$get_pid" "$login_pid")
		wait "$get_pid"
		wait "$login_pid"
		BG_PIDS=()
		stop_server
		FLOOD_NAME[i]=$cname
	done
fi

# --- idle: RSS per idle logged-in connection -----------------------------------------
# idle_measure NAME PID ARGS...: read PID's RSS, open the idle connections
# (authline bench --workload idle ARGS), read the RSS 1s, 5s and
# BENCH_IDLE_WAIT seconds after they are all set up, let bench check them.
# Sets RSS_BEFORE, RSS_AFTER (KiB, the last reading), RSS_READS, FDS.
idle_measure() {
	local name=$1 pid=$2
	shift 2
	sleep 1
	RSS_BEFORE=$(rss_kib "$pid")
	rm -f "$WORK/$name.ready"
	bench "$name" --workload idle --conns "$IDLE_CONNS" --duration "$((IDLE_WAIT + 3))s" \
		--ready-file "$WORK/$name.ready" "$@" &
	local bpid=$! t=0 r
	BG_PIDS=("$bpid")
	wait_file "$WORK/$name.ready" "$bpid"
	RSS_READS=""
	for at in $(printf '%s\n' 1 5 "$IDLE_WAIT" | sort -n -u); do
		((at > IDLE_WAIT)) && break
		((at > t)) && sleep $((at - t))
		t=$at
		r=$(rss_kib "$pid")
		RSS_READS+="${RSS_READS:+, }+${at}s $((r / 1024)) MiB"
		RSS_AFTER=$r
	done
	FDS=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	wait "$bpid"
	BG_PIDS=()
	log "$name: RSS ${RSS_BEFORE} KiB before, then $RSS_READS; $FDS fds"
}
# per_conn BEFORE AFTER: KiB per connection, one decimal
per_conn() { awk -v a="$1" -v b="$2" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (b - a) / n }'; }

if phase idle; then
	start_server idle - --bcrypt-cost 4 --ip-auth-rate 0 --no-login-throttle --max-conns 0 --max-conns-per-ip 0 \
		--idle-timeout 0 --hash-queue 256 --log-level info
	idle_measure idle "$SERVER_PID" --server "$ADDR"
	IDLE_BEFORE=$RSS_BEFORE IDLE_AFTER=$RSS_AFTER IDLE_READS=$RSS_READS IDLE_FDS=$FDS
	IDLE_KIB=$(per_conn "$IDLE_BEFORE" "$IDLE_AFTER")
	stop_server
fi

REDIS_IDLE_NOTE=""
if [[ $REDIS == 1 ]] && phase idle; then
	# Redis's RSS can be read only if it runs here, as a process we can see.
	rpid=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
	if [[ -n $rpid && -r /proc/$rpid/status ]] && grep -q redis "/proc/$rpid/comm" 2>/dev/null; then
		maxc=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" config get maxclients | tr -d '\r' | tail -n 1)
		if ((maxc < IDLE_CONNS + 100)); then
			# Raised for the run, put back by cleanup.
			REDIS_MAXCLIENTS=$maxc
			redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" config set maxclients $((IDLE_CONNS + 100)) >/dev/null
		fi
		idle_measure redis-idle "$rpid" --server "$REDIS_ADDR" --raw PING
		RIDLE_BEFORE=$RSS_BEFORE RIDLE_AFTER=$RSS_AFTER RIDLE_READS=$RSS_READS
		RIDLE_KIB=$(per_conn "$RIDLE_BEFORE" "$RIDLE_AFTER")
		if [[ -n $REDIS_MAXCLIENTS ]]; then
			redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" config set maxclients "$REDIS_MAXCLIENTS" >/dev/null
			REDIS_MAXCLIENTS=""
		fi
	else
		REDIS_IDLE_NOTE="Redis idle row skipped: its process is not visible here."
		log "$REDIS_IDLE_NOTE"
	fi
fi

# --- startup with many users ----------------------------------------------------------
# Three measurements: the seeded store with the default flags (the target),
# an empty store (what the users cost), and the seeded store with
# --bcrypt-cost 4 (what the cost-12 dummy hash that the auth service
# computes when it starts costs). One unmeasured start first on each store:
# a new store gets its key file and signing key then, which later starts
# only read.
STARTUP_CASES=("startup|startup|" "empty|empty|" "startup-c4|startup|--bcrypt-cost 4")
if phase startup; then
	log "seeding $STARTUP_USERS users"
	"$WORK/seed" --db "$WORK/startup.db" --users "$STARTUP_USERS" >&2
	for store in startup empty; do
		"$WORK/startup" --runs 1 --log "$WORK/$store-start.log" -- "$WORK/authlined" serve --db "$WORK/$store.db" --listen '{addr}' >/dev/null
	done
	for c in "${STARTUP_CASES[@]}"; do
		IFS='|' read -r cname store flags <<<"$c"
		log "startup ($cname): $STARTUP_RUNS starts"
		# shellcheck disable=SC2086 # flags: words on purpose
		"$WORK/startup" --runs "$STARTUP_RUNS" --json --log "$WORK/$cname-start.log" -- \
			"$WORK/authlined" serve --db "$WORK/$store.db" --listen '{addr}' $flags >"$WORK/$cname-start.json"
	done
fi

# --- Go benchmarks: allocations per request ---------------------------------------------
if phase alloc; then
	log "go test -run '^\$' -bench . -benchmem ./server/"
	go test -run '^$' -bench . -benchmem ./server/ >"$WORK/alloc.txt"
fi

# --- bcrypt limit ---------------------------------------------------------------
if phase load || phase flood; then
	log "measuring bcrypt at cost 12 (go test -bench BenchmarkBcryptCost12 ./server/auth)"
	go test -run '^$' -bench 'BenchmarkBcryptCost12$' -benchtime 2s ./server/auth >"$WORK/bcrypt.txt"
	BCRYPT_NS=$(awk '/^BenchmarkBcryptCost12/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") { print $i; exit } }' "$WORK/bcrypt.txt")
fi
CORES=$(nproc)
BCRYPT_LIMIT=""
[[ -n ${BCRYPT_NS:-} ]] && BCRYPT_LIMIT=$(awk -v c="$CORES" -v ns="$BCRYPT_NS" 'BEGIN { printf "%.1f", c * 1e9 / ns }')

# --- table ------------------------------------------------------------------------
declare -A RPS P50 P99 P999 ERR SETUP
for f in "$WORK"/*.json; do
	name=$(basename "$f" .json)
	[[ $name == *-start ]] && continue
	read -r RPS[$name] P50[$name] P99[$name] P999[$name] ERR[$name] SETUP[$name] < <(summary "$f")
done
has() { [[ -n ${RPS[$1]:-} ]]; }
# The Redis PING baseline: the mean of the runs before and after the
# unpipelined workloads, or the one there is.
if has redis-ping-before && has redis-ping-after; then
	RPS[redis-ping]=$(awk -v a="${RPS[redis-ping-before]}" -v b="${RPS[redis-ping-after]}" 'BEGIN { print (a + b) / 2 }')
elif has redis-ping-before; then
	RPS[redis-ping]=${RPS[redis-ping-before]}
fi

ratio() { # ratio A B: A/B with two decimals, or "n/a"
	if [[ -z ${1:-} || -z ${2:-} ]]; then
		echo "n/a"
	else
		awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
	fi
}
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
rate() { awk -v r="$1" 'BEGIN { if (r < 100) printf "%.1f", r; else printf "%.0f", r }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; } # le A B: A <= B
met() { if "$@"; then echo "met"; else echo "**not met**"; fi; }

row() { # row NAME LABEL RESULT
	local n=$1
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$(rate "${RPS[$n]}")" "$(ms "${P50[$n]}")" "$(ms "${P99[$n]}")" "$(ms "${P999[$n]}")" "${ERR[$n]}" "$3"
}
plain() { # plain LABEL RESULT: a row without requests or latencies
	printf '| %s | — | — | — | — | — | %s |\n' "$1" "$2"
}

CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo
echo "Machine: ${CORES} cores (nproc), ${CPU:-unknown CPU}; Linux $(uname -r); $(go version | awk '{ print $3, $4 }'); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "Run: phases${PHASES% }; duration ${DURATION} per workload (login ${LOGIN_DURATION}), each after ${WARMUP} of warm-up, ${CONNS} connections (login ${LOGIN_CONNS}), pipeline ${PIPELINE}; authlined ${SERVE_OPTS[*]}, SQLite store"
phase flood && echo "Flood: ${FLOOD_GET_CONNS} connections sending session GETs at ${FLOOD_GET_RATE}/s in all, during ${LOGIN_CONNS} connections sending LOGIN; both measured for ${FLOOD_DURATION} after ${FLOOD_WARMUP} of warm-up"
phase idle && echo "Idle: ${IDLE_CONNS} connections logged in (authlined --bcrypt-cost 4 --max-conns 0 --idle-timeout 0; Redis: one PING each), RSS (VmRSS) read before and ${IDLE_WAIT}s after the last was set up"
[[ -n $BCRYPT_LIMIT ]] && echo "bcrypt cost 12: ${BCRYPT_NS} ns/hash (BenchmarkBcryptCost12) -> limit ${CORES} / $(awk -v ns="$BCRYPT_NS" 'BEGIN { printf "%.4f", ns / 1e9 }') s = ${BCRYPT_LIMIT} hashes/s"
[[ -n $REDIS_NOTE ]] && echo "$REDIS_NOTE"
[[ -n $REDIS_IDLE_NOTE ]] && echo "$REDIS_IDLE_NOTE"
echo
echo "| workload | requests/s (ok) | p50 ms | p99 ms | p99.9 ms | errors | result |"
echo "|---|---:|---:|---:|---:|---:|---|"
has get-session && row get-session "get-session, ${CONNS} conns" "$(ratio "${RPS[get-session]}" "${RPS[redis-ping]:-}") × Redis PING"
has get-session-p && row get-session-p "get-session, ${CONNS} conns, pipeline ${PIPELINE}" "$(ratio "${RPS[get-session-p]}" "${RPS[redis-ping-p]:-}") × Redis PING -P ${PIPELINE}"
has get-token && row get-token "get-token, ${CONNS} conns" "$(ratio "${RPS[get-token]}" "${RPS[get-session]:-}") × session GET"
has ping && row ping "ping, ${CONNS} conns" "$(ratio "${RPS[ping]}" "${RPS[redis-ping]:-}") × Redis PING"
has mixed && row mixed "mixed, ${CONNS} conns" "—"
has login && row login "login (cost 12), ${LOGIN_CONNS} conns" "$(ratio "${RPS[login]}" "$BCRYPT_LIMIT") × bcrypt limit (${BCRYPT_LIMIT}/s)"
for i in "${!FLOOD_NAME[@]}"; do
	has "flood$i-get" || continue
	row "flood$i-get" "flood, ${FLOOD_NAME[i]}: get-session at ${FLOOD_GET_RATE}/s, ${FLOOD_GET_CONNS} conns" "GET p99 $(ms "${P99[flood$i-get]}") ms (target ≤ 5)"
	row "flood$i-login" "flood, ${FLOOD_NAME[i]}: login (cost 12), ${LOGIN_CONNS} conns" "$(ratio "${RPS[flood$i-login]}" "$BCRYPT_LIMIT") × bcrypt limit"
done
if [[ -n ${IDLE_KIB:-} ]]; then
	plain "idle authlined, ${IDLE_CONNS} logged-in conns" "**${IDLE_KIB} KiB/conn**: RSS $((IDLE_BEFORE / 1024)) → $((IDLE_AFTER / 1024)) MiB ($IDLE_READS); set up in $(printf '%.1f' "${SETUP[idle]}")s, ${ERR[idle]} failed WHOAMI after, ${IDLE_FDS} fds"
fi
if [[ -n ${RIDLE_KIB:-} ]]; then
	plain "idle Redis, ${IDLE_CONNS} conns (one PING each)" "**${RIDLE_KIB} KiB/conn**: RSS $((RIDLE_BEFORE / 1024)) → $((RIDLE_AFTER / 1024)) MiB ($RIDLE_READS); ${ERR[redis-idle]} failed PING after"
fi
ms1() { printf '%.1f' "$(jfield "$WORK/$1-start.json" "$2")"; } # ms1 STORE FIELD
for store in startup empty startup-c4; do
	[[ -f $WORK/$store-start.json ]] || continue
	case $store in
	startup) label="startup to first greeting, ${STARTUP_USERS} users" ;;
	empty) label="startup to first greeting, empty store" ;;
	startup-c4) label="startup to first greeting, ${STARTUP_USERS} users, --bcrypt-cost 4" ;;
	esac
	plain "$label" "**median $(ms1 "$store" median_ms) ms** (min $(ms1 "$store" min_ms), max $(ms1 "$store" max_ms); ${STARTUP_RUNS} starts)"
done
if [[ -f $WORK/alloc.txt ]]; then
	while read -r bname ns bytes allocs; do
		plain "go test ${bname%-*} (one request over loopback)" "**${allocs} allocs/op**, ${bytes} B/op, ${ns} ns/op"
	done < <(awk '/^Benchmark/ { ns = b = a = "?"; for (i = 1; i < NF; i++) { if ($(i+1) == "ns/op") ns = $i; if ($(i+1) == "B/op") b = $i; if ($(i+1) == "allocs/op") a = $i } print $1, ns, b, a }' "$WORK/alloc.txt")
fi
if has redis-ping; then
	has redis-ping-before && row redis-ping-before "Redis PING (raw), ${CONNS} conns, before get-session" "baseline (mean $(rate "${RPS[redis-ping]}") requests/s)"
	has redis-ping-after && row redis-ping-after "Redis PING (raw), ${CONNS} conns, after ping" "baseline (mean $(rate "${RPS[redis-ping]}") requests/s)"
	has redis-ping-p && row redis-ping-p "Redis PING (raw), ${CONNS} conns, pipeline ${PIPELINE}, after get-session pipelined" "baseline"
fi

# --- targets -------------------------------------------------------------------------
echo
echo "| target | measured | status |"
echo "|---|---|---|"
if has get-session && has redis-ping; then
	r=$(ratio "${RPS[get-session]}" "${RPS[redis-ping]}")
	echo "| session GET ≥ 0.8 × Redis PING (${CONNS} conns) | ${r} × | $(met le 0.8 "$r") |"
fi
if has get-session-p && has redis-ping-p; then
	r=$(ratio "${RPS[get-session-p]}" "${RPS[redis-ping-p]}")
	echo "| pipelined session GET ≥ 0.5 × Redis PING -P ${PIPELINE} | ${r} × | $(met le 0.5 "$r") |"
fi
if has get-token && has get-session; then
	r=$(ratio "${RPS[get-token]}" "${RPS[get-session]}")
	echo "| token GET ≥ 0.9 × session GET | ${r} × | $(met le 0.9 "$r") |"
fi
if has login && [[ -n $BCRYPT_LIMIT ]]; then
	r=$(ratio "${RPS[login]}" "$BCRYPT_LIMIT")
	echo "| LOGIN (cost 12, ${LOGIN_CONNS} clients) ≥ 0.9 × bcrypt limit | ${r} × ($(rate "${RPS[login]}")/s of ${BCRYPT_LIMIT}/s) | $(met le 0.9 "$r") |"
fi
for i in "${!FLOOD_NAME[@]}"; do
	has "flood$i-get" || continue
	r=$(ratio "${RPS[flood$i-login]}" "$BCRYPT_LIMIT")
	p=$(ms "${P99[flood$i-get]}")
	echo "| login flood (${FLOOD_NAME[i]}): LOGIN ≥ 0.9 × limit and GET p99 ≤ 5 ms | ${r} ×, p99 ${p} ms | $(met eval "le 0.9 $r && le $p 5") |"
done
if [[ -n ${IDLE_KIB:-} ]]; then
	echo "| ≤ 8 KiB RSS per idle logged-in connection at ${IDLE_CONNS} | ${IDLE_KIB} KiB${RIDLE_KIB:+ (Redis ${RIDLE_KIB} KiB)} | $(met eval "le $IDLE_KIB 8 && [[ ${ERR[idle]} == 0 ]]") |"
fi
if [[ -f $WORK/startup-start.json ]]; then
	m=$(ms1 startup median_ms)
	echo "| startup ≤ 200 ms with ${STARTUP_USERS} users | median ${m} ms | $(met le "$m" 200) |"
fi
if [[ -f $WORK/alloc.txt ]]; then
	a=$(awk '/^BenchmarkSessionGET-/ { for (i = 1; i < NF; i++) if ($(i+1) == "allocs/op") print $i }' "$WORK/alloc.txt")
	[[ -n $a ]] && echo "| ≤ 3 allocs per session GET | ${a} allocs/op (BenchmarkSessionGET) | $(met le "$a" 3) |"
fi
