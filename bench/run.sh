#!/usr/bin/env bash
# make bench: every measurement of TARGETS.md, written as a markdown table to bench/RESULTS.md.
# Reports only; nothing here fails on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/RESULTS.md
seconds=${BENCH_SECONDS:-10}
tokens=${BENCH_COUNT_TOKENS:-100000}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk zip >/dev/null; }
cargo build --release --locked --workspace --bins

{
  echo "# Benchmark results"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB;"
  echo "$(rustc --version); $(date -u +%Y-%m-%d). Command: \`make bench\`. Medians; the machine is shared and noisy."
  echo
  echo "What bounds each figure, and the verdict against each target: [ANALYSIS.md](ANALYSIS.md)."
  echo
} >"$out"

echo "== criterion (in-process, one core)"
cargo bench --locked -p token-service --bench tokens -- --noplot >/dev/null 2>&1
{
  echo "## In-process, one core (criterion)"
  echo
  echo "| benchmark | median | per second |"
  echo "|---|---|---|"
  python3 - <<'PY'
import glob, json, os
for estimates in sorted(glob.glob("target/criterion/**/new/estimates.json", recursive=True)):
    name = json.load(open(os.path.join(os.path.dirname(estimates), "benchmark.json")))["full_id"]
    ns = json.load(open(estimates))["median"]["point_estimate"]
    print(f"| {name} | {ns/1000:.1f} µs | {1e9/ns:,.0f} |")
PY
  echo
} >>"$out"

echo "== where verification goes (callgrind)"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
criterion_bin=$(find target/release/deps -maxdepth 1 -type f -perm -u+x -name 'tokens-*' -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
{
  echo "## Where a verification's instructions go (callgrind; instruction counts are exact, whatever the load)"
  echo
  echo "| verify/ | instructions in the signature check | in parsing, claims and the rest |"
  echo "|---|---|---|"
  for alg in ES256 EdDSA RS256; do
    valgrind --tool=callgrind --callgrind-out-file="target/callgrind.verify.$alg" \
      "$criterion_bin" --bench "^verify/$alg\$" --profile-time 1 >/dev/null 2>&1
    callgrind_annotate --inclusive=yes "target/callgrind.verify.$alg" | python3 bench/verify_share.py "$alg"
  done
  echo
} >>"$out"

echo "== HTTP load on the local server"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
keys=$work/keys.json
# The seed the server reads without --seed, plus a private_key_jwt client whose key is made here.
seed=$work/seed.toml
{
  cat "${SEED_FILE:-local/seed.toml}"
  .venv/bin/python bench/one_time_jwts.py client --key "$work/signer.pem" --id bench-signer --tenant /acme
} >"$seed"
target/release/tokenctl serve --port "$port" --seed "$seed" --keys "$keys" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/.well-known/jwks.json" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
basic="Basic $(printf 'demo-client:demo-secret-for-localhost-only-0123456789' | base64 -w0)"
token=$(curl -s -H "Authorization: $basic" -d grant_type=client_credentials "$base/oauth2/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
threads=2
# The server's CPU time so far (user + system), in clock ticks.
server_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
load() { # path body [wrk script [Authorization, "" for none]]: sets rps, p50, p99, non2xx, cpu
  local report before
  before=$(server_ticks)
  report=$(PATH_TO_HIT="$1" BODY="$2" AUTH="${4-$basic}" WRK_THREADS=$threads \
    wrk -t$threads -c64 -d"${seconds}s" --latency -s "${3:-bench/post.lua}" "$base")
  rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$report" | awk '$1=="50%" {print $2}')
  p99=$(echo "$report" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$report" | awk '/Non-2xx/ {print $5}')
  # wrk shares the two cores, and a script that builds each request (one_time.lua) takes more
  # of them than a fixed one: the server's own CPU per request compares routes whatever wrk costs.
  cpu=$(echo "$report" | awk -v ticks=$(($(server_ticks) - before)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {printf "%.0f µs", ticks / hz * 1e6 / $1}')
}
row() { echo "| $1 | ${rps} | ${p50} | ${p99} | ${non2xx:-0} | ${cpu} |"; }
versus() { # rps of a row to compare with, its name
  awk -v a="$rps" -v b="$1" -v name="$2" 'BEGIN { if (b > 0) printf "%.2f× %s", a / b, name; else printf "no %s to compare", name }'
}
versus_secret() { versus "$secret_rps" "the secret row"; }
load /oauth2/token "grant_type=client_credentials"
secret_row=$(row "POST /oauth2/token client_credentials (ES256)") secret_rps=$rps
load /oauth2/introspect "token=$token"
introspect_row=$(row "POST /oauth2/introspect")
load /oauth2/revoke "token=$token"
revoke_row=$(row "POST /oauth2/revoke (RFC 7009, same token)")
load /oauth2/token "grant_type=password&username=alice&password=alice-demo-password"
password_row=$(row "POST /oauth2/token password (Argon2id, OWASP)")
memory=$(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' /proc/$server/status)
# Key-bound client_credentials, measured last: the server keeps each one-time jti until its JWT
# expires, which the memory figure above leaves out. Each request carries a JWT signed beforehand
# (wrk cannot sign) and used once, as a repeat is refused as a replay. Each set is signed just
# before its run: a DPoP proof's iat must be within 60 s of its use, an assertion's exp 300 s.
one_time=${BENCH_ONE_TIME:-$((seconds * 20000))}
.venv/bin/python bench/one_time_jwts.py assertions --key "$work/signer.pem" --id bench-signer \
  --aud "$base/oauth2/token" --count "$one_time" --out "$work/assertions"
ONE_TIME_FILE=$work/assertions load /oauth2/token "" bench/one_time.lua ""
signed_row=$(row "POST /oauth2/token client_credentials, private_key_jwt (ES256 assertion; $(versus_secret))")
rm -f "$work/assertions"
.venv/bin/python bench/one_time_jwts.py dpop --htu "$base/oauth2/token" --count "$one_time" --out "$work/proofs"
ONE_TIME_FILE=$work/proofs ONE_TIME_HEADER=DPoP load /oauth2/token "grant_type=client_credentials" bench/one_time.lua
bound_rps=$rps bound_cpu=$cpu
bound_row=$(row "POST /oauth2/token client_credentials, secret and DPoP proof (ES256; $(versus_secret))")
# The same wrk script and proofs in a header the server ignores: client_credentials without DPoP,
# with the load generator costing what it costs in the DPoP row.
ONE_TIME_FILE=$work/proofs ONE_TIME_HEADER=X-Not-Dpop load /oauth2/token "grant_type=client_credentials" bench/one_time.lua
unbound_row=$(row "POST /oauth2/token client_credentials, secret, the DPoP row's wrk script (proofs in a header the server ignores)")
unbound_rps=$rps unbound_cpu=$cpu rps=$bound_rps
dpop_ratio="With DPoP, client_credentials runs at $(versus "$secret_rps" "the secret row") and at $(versus "$unbound_rps" "the same wrk script without DPoP"); the server spends $bound_cpu of CPU per request with DPoP, $unbound_cpu without."
{
  echo "## HTTP, local server, in-memory store, keep-alive, 64 connections, wrk on the same 2 cores (${seconds} s each)"
  echo
  echo "| route | requests/s | p50 | p99 | non-2xx | server CPU per request |"
  echo "|---|---|---|---|---|---|"
  echo "$secret_row"
  echo "$signed_row"
  echo "$bound_row"
  echo "$unbound_row"
  echo "$introspect_row"
  echo "$revoke_row"
  echo "$password_row"
  echo
  echo "$dpop_ratio"
  echo
  echo "Peak resident memory of the local server after these runs: $memory (before the private_key_jwt"
  echo "and DPoP rows; after them, holding their one-time jti records: $(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' /proc/$server/status))."
  echo
} >>"$out"
kill $server; trap - EXIT
rm -rf "$work"

echo "== the same three routes beside node-oidc-provider (npm), taking turns"
BENCH_SECONDS=$seconds TOKENCTL=target/release/tokenctl bench/peer.sh "$out"

echo "== cold starts"
{
  echo "## Cold start: release bootstrap under the Runtime API emulator"
  echo
  echo "A new process per start, on a seeded table on moto; the first response includes that"
  echo "request's DynamoDB round trips to moto on this machine."
  echo
  tests/aws-local.sh target/release/bench coldstart release 20 2>/dev/null | grep -v '^moto server'
  echo
} >>"$out"

# BENCH_JITTER=0 skips this section: it builds two bootstraps again in a target directory of
# their own, a quarter of an hour on two cores.
if [ "${BENCH_JITTER:-1}" != 0 ]; then
  echo "== jitter entropy (aws-lc built with it, for comparison)"
  AWS_LC_SYS_NO_JITTER_ENTROPY=0 CARGO_TARGET_DIR=target/jitter-entropy \
    cargo build --release --locked -p token -p keys >/dev/null 2>&1
  {
    echo "## Cold start with aws-lc's jitter entropy built in (\`AWS_LC_SYS_NO_JITTER_ENTROPY=0\`)"
    echo
    echo "The same measurement, bootstraps built in \`target/jitter-entropy\`; compare with the table above."
    echo
    CARGO_TARGET_DIR=target/jitter-entropy tests/aws-local.sh target/release/bench coldstart release 20 token keys \
      2>/dev/null | grep -v '^moto server'
    echo
  } >>"$out"
else
  printf '%s\n\n' "BENCH_JITTER=0: this run left out the cold start with aws-lc's jitter entropy built in." >>"$out"
fi

echo "== memory under load"
{
  echo "## Peak memory of each release function under sustained load"
  echo
  echo "One request at a time, as Lambda sends them, on a seeded table on moto; VmHWM of the process."
  echo
  tests/aws-local.sh target/release/bench memory release "${BENCH_INVOCATIONS:-2000}" 2>/dev/null | grep -v '^moto server'
  echo
} >>"$out"

echo "== the authorizer with and without its verified-token cache"
{
  echo "## The authorizer's CPU per invocation, verified-token cache off and on"
  echo
  echo "Under the Runtime API emulator on a seeded table on moto, one request at a time; the process's"
  echo "user + system time divided by its invocations. Off and on alternate, three processes each."
  echo
  tests/aws-local.sh target/release/bench authorizer release "${BENCH_INVOCATIONS:-2000}" 2>/dev/null | grep -v '^moto server'
  echo
} >>"$out"

echo "== sizes"
{
  echo "## Release bootstrap sizes (stripped; zipped as Lambda receives them)"
  echo
  echo "| function | stripped | zipped |"
  echo "|---|---|---|"
  for f in token revoke batch-revoke introspect keys authorizer admin; do
    zipfile=$(mktemp -u).zip
    zip -q -9 -j "$zipfile" "target/release/$f"
    echo "| $f | $(du -b "target/release/$f" | awk '{printf "%.2f MB", $1/1e6}') | $(du -b "$zipfile" | awk '{printf "%.2f MB", $1/1e6}') |"
    rm -f "$zipfile"
  done
  echo
} >>"$out"

echo "== DynamoDB (moto)"
{
  echo "## DynamoDB, on moto's server"
  echo
  tests/aws-local.sh target/release/bench dynamodb "$tokens" 2>/dev/null | grep -v '^moto server'
  echo
} >>"$out"
echo "== counting on dynalite (npm), a DynamoDB-compatible server whose Query keeps pace at 100k"
[ -x .local/dynalite/node_modules/.bin/dynalite ] ||
  npm install --silent --no-audit --no-fund --prefix .local/dynalite dynalite@4.0.0 >/dev/null
dynalite_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.local/dynalite/node_modules/.bin/dynalite --port "$dynalite_port" --createTableMs 0 >/dev/null 2>&1 &
dynalite=$!
trap 'kill $dynalite 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s "http://127.0.0.1:$dynalite_port" >/dev/null && break; sleep 0.1; done
{
  echo "## Counting for a batch revocation on dynalite"
  echo
  echo "$tokens live tokens in one tenant, loaded one PutItem each as the token function writes them."
  echo "dynalite reports the read units of the bytes it read, as strongly consistent reads would cost"
  echo "them; DynamoDB bills the index's eventually consistent reads at half that. The narrowed row"
  echo "counts one client's 1 % of the tenant's tokens through the client index."
  echo
  AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dynalite_port" AWS_ACCESS_KEY_ID=bench \
    AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 target/release/bench count "$tokens" 2>/dev/null
  echo
} >>"$out"
kill $dynalite; trap - EXIT
echo "wrote $out"
