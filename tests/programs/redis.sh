#!/usr/bin/env bash
# redis-server on 127.0.0.1 (a free port, no persistence), started and stopped
# here; redis-cli writes and reads back strings (up to 1 MiB), lists, sets,
# sorted sets, hashes and counters, redis-benchmark runs set/get/lpush/lpop/incr,
# then SHUTDOWN NOSAVE. Compared: the values read back, the dataset digest
# before and after the benchmark, which benchmark tests completed, and the
# server's exit status (not throughput). Server, cli and benchmark all run under
# the preload. Note: Debian's redis keeps its own data in a statically linked
# jemalloc, so there pcmalloc serves only what libc and the other libraries
# allocate (it must coexist with a second allocator in the same process).
# Usage: redis.sh LIB REDIS-SERVER
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") server=$2
tools=$(dirname "$server")
redis_cli=$tools/redis-cli benchmark=$tools/redis-benchmark
for tool in "$redis_cli" "$benchmark"; do
  if [[ ! -x $tool ]]; then echo "$tool not found"; exit 77; fi
done
requests=$(by_size 20000 1000)

# The commands are generated once, before either run: deterministic contents.
commands=$program_work/commands.txt
awk 'BEGIN {
  for (i = 0; i < 400; i++) {
    value = ""
    for (j = 0; j < 1 + (i * 37) % 300; j++) value = value sprintf("%c", 97 + (i + j) % 26)
    printf "SET str:%d %s\n", i, value
    printf "RPUSH list:%d %s %d item-%d\n", i % 10, value, i, i
    printf "SADD set:%d m%d m%d\n", i % 7, i, i * 3 % 101
    printf "ZADD zset %d z%d\n", (i * 7919) % 1000, i
    printf "HSET hash:%d f%d %s\n", i % 5, i, substr(value, 1, 20)
    printf "INCRBY counter:%d %d\n", i % 3, i
    if (i % 50 == 0) printf "APPEND str:0 -%d\n", i
    if (i % 40 == 0) printf "DEL str:%d\n", i + 1
  }
}' >"$commands"
head -c 1048576 /dev/zero | tr '\0' 'q' >"$program_work/big.txt"

workload() {
  local port status try
  # Never leak a server: whatever ends this subshell stops it (server_pid is
  # global to the subshell, so the EXIT trap still sees it).
  server_pid=""
  stop_server() { if [[ -n ${server_pid:-} ]]; then kill -9 "$server_pid" 2>/dev/null || true; fi; }
  trap stop_server EXIT
  trap 'exit 1' INT TERM
  cli() { "$redis_cli" -p "$port" "$@"; }
  # A free port: ports in use make the server exit at once; try another.
  for try in 1 2 3 4 5 6 7 8; do
    port=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 40000))
    "$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
      --enable-debug-command local --dir "$PWD" --logfile "$PWD/server.log" &
    server_pid=$!
    for ((i = 0; i < 100; i++)); do
      if [[ $(cli ping 2>/dev/null) == PONG ]] || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null && [[ $(cli ping 2>/dev/null) == PONG ]]; then break; fi
    stop_server
    server_pid=""
    echo "port $port: the server did not start (try $try)" >&2
  done
  [[ -n $server_pid ]]
  echo "server: up"

  cli <"$commands" >replies.txt
  echo "replies: $(plain wc -l <replies.txt) lines, sha256 $(plain sha256sum <replies.txt | plain cut -c1-64)"
  cli -x SET big <"$program_work/big.txt"
  cli APPEND big tail
  cli STRLEN big
  cli GETRANGE big 1048570 -1
  cli GET str:0
  cli GET str:299
  cli LRANGE list:3 0 4 | plain cut -c1-40
  cli LLEN list:9
  cli SORT set:2 ALPHA
  cli SCARD set:6
  cli ZRANGE zset 0 9 WITHSCORES
  cli ZCOUNT zset 100 200
  cli HKEYS hash:4 | plain sort | plain head -n 10
  cli HGET hash:1 f101
  cli MGET counter:0 counter:1 counter:2
  cli DBSIZE
  cli DEBUG DIGEST

  "$benchmark" -p "$port" -n "$requests" -c 20 -t set,get,lpush,lpop,incr --csv >benchmark.csv
  plain cut -d, -f1 benchmark.csv
  cli GET counter:__rand_int__
  cli LLEN mylist
  cli DBSIZE
  cli DEBUG DIGEST

  cli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  status=0
  wait "$server_pid" || status=$?
  server_pid=""
  echo "server: exit $status"
  plain tail -n 5 server.log >&2
  return "$status"
}
compare_runs "$lib" workload
