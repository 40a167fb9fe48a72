#!/usr/bin/env bash
# The local server beside node-oidc-provider (bench/peer/), route by route, in the same wrk set-up
# as bench/run.sh's HTTP table: client_credentials, introspection, RFC 7009 revocation of the same
# token. BENCH_PEER_ROUNDS rounds a route, the two servers taking turns (ours first in odd rounds,
# the peer first in even ones); the median of each side's rounds. Appends a section to OUT.
#
#   bench/peer.sh [OUT]     OUT defaults to bench/RESULTS.md
#
# TOKENCTL (default target/release/tokenctl) is the server binary, so this runs without a build;
# BENCH_SECONDS (10), BENCH_PEER_ROUNDS (3), BENCH_PEER_WARMUP (seconds of unrecorded load on each
# server first, 2), SEED_FILE (local/seed.toml). Needs node, npm, python3, curl and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/RESULTS.md}
tokenctl=${TOKENCTL:-target/release/tokenctl}
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_PEER_ROUNDS:-3}
warmup=${BENCH_PEER_WARMUP:-2}
[ "$rounds" -ge 1 ] 2>/dev/null || { echo "bench/peer.sh: BENCH_PEER_ROUNDS must be a whole number ≥ 1" >&2; exit 1; }
threads=2
connections=64

for tool in node npm python3 curl wrk; do
  command -v "$tool" >/dev/null || { echo "bench/peer.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$tokenctl" ] || { echo "bench/peer.sh: no server binary at $tokenctl (TOKENCTL)" >&2; exit 1; }

# node-oidc-provider from the committed lock, installed again whenever the lock changes.
peer=.local/peer
lock_digest=$(sha256sum bench/peer/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$peer/.installed" 2>/dev/null)" != "$lock_digest" ]; then
  echo "== installing node-oidc-provider into $peer (npm ci, bench/peer/package-lock.json)"
  rm -f "$peer/.installed"
  mkdir -p "$peer"
  cp bench/peer/package.json bench/peer/package-lock.json "$peer/"
  npm ci --no-audit --no-fund --loglevel=error --prefix "$peer" >&2 ||
    { echo "bench/peer.sh: npm ci of node-oidc-provider failed" >&2; exit 1; }
  echo "$lock_digest" >"$peer/.installed"
fi
# Beside its node_modules, where Node resolves the import.
cp bench/peer/server.mjs "$peer/server.mjs"
peer_version=$(node -p "require('./$peer/node_modules/oidc-provider/package.json').version")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
ours_pid='' peer_pid=''
cleanup() { # both servers, waited for, so none outlives the script
  local pid
  for pid in $ours_pid $peer_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

ours_port=$(free_port)
cp "${SEED_FILE:-local/seed.toml}" "$work/seed.toml"
"$tokenctl" serve --port "$ours_port" --seed "$work/seed.toml" --keys "$work/keys.json" >"$work/ours.log" 2>&1 &
ours_pid=$!
peer_port=$(free_port)
node "$peer/server.mjs" "$peer_port" >"$work/peer.log" 2>&1 &
peer_pid=$!
ours="http://127.0.0.1:$ours_port"
peer_base="http://127.0.0.1:$peer_port"
up() { # url pid log
  for _ in $(seq 100); do
    curl -s -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench/peer.sh: no answer from $1; its output:" >&2
  cat "$3" >&2
  exit 1
}
up "$ours/.well-known/jwks.json" "$ours_pid" "$work/ours.log"
up "$peer_base/.well-known/openid-configuration" "$peer_pid" "$work/peer.log"

# The peer's paths, from its discovery document.
paths=$(curl -sf "$peer_base/.well-known/openid-configuration" | python3 -c 'import json, sys, urllib.parse
d = json.load(sys.stdin)
print(*(urllib.parse.urlsplit(d[k]).path for k in ("token_endpoint", "introspection_endpoint", "revocation_endpoint")))')
read -r peer_token peer_introspect peer_revoke <<<"$paths"

basic="Basic $(printf 'demo-client:demo-secret-for-localhost-only-0123456789' | base64 -w0)"
# The scope named, as node-oidc-provider grants none unasked (ours grants all of the client's
# scopes); the same body to both, so both sign the same claims.
grant="grant_type=client_credentials&scope=read%20write%20revoke%3Abatch"
# node-oidc-provider answers 400 unsupported_token_type when asked to introspect or revoke a JWT:
# those two routes get a token of the same grant in its opaque format.
opaque="resource=urn%3Abench%3Aopaque"

token() { # base path [extra body]: an access token, or exit
  curl -sf -H "Authorization: $basic" -d "$grant${3:+&$3}" "$1$2" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
# One request each way first, checked, so a misconfigured server fails here and not as a table of
# fast 400s.
check() { # base token-path introspect-path revoke-path [extra token body]
  python3 - "$(token "$1" "$2")" "$(token "$1" "$2" "${5-}")" "$1$3" "$1$4" "$basic" <<'PY'
import base64, json, sys, urllib.request
jwt, token, introspect, revoke, basic = sys.argv[1:]
header = json.loads(base64.urlsafe_b64decode(jwt.split(".")[0] + "=="))
assert header["alg"] == "ES256", header
def post(url):
    request = urllib.request.Request(url, data=f"token={token}".encode(), headers={"Authorization": basic})
    with urllib.request.urlopen(request) as response:
        return response.status, response.read()
status, body = post(introspect)
assert status == 200 and json.loads(body)["active"] is True, (status, body)
assert post(revoke)[0] == 200
status, body = post(introspect)
assert status == 200 and json.loads(body)["active"] is False, ("revoked, still active", body)
PY
}
check "$ours" /oauth2/token /oauth2/introspect /oauth2/revoke ||
  { echo "bench/peer.sh: the local server failed the check" >&2; exit 1; }
check "$peer_base" "$peer_token" "$peer_introspect" "$peer_revoke" "$opaque" ||
  { echo "bench/peer.sh: node-oidc-provider failed the check" >&2; cat "$work/peer.log" >&2; exit 1; }

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
load() { # base path body: prints "req/s non-2xx"
  local report
  report=$(PATH_TO_HIT="$2" BODY="$3" AUTH="$basic" WRK_THREADS=$threads \
    wrk -t$threads -c$connections -d"${4:-$seconds}s" --latency -s bench/post.lua "$1")
  echo "$(echo "$report" | awk '/Requests\/sec/ {print $2}') $(echo "$report" | awk '/Non-2xx/ {n=$5} END {print n+0}')"
}
load "$ours" /oauth2/token "$grant" "$warmup" >/dev/null
load "$peer_base" "$peer_token" "$grant" "$warmup" >/dev/null

ours_cpu=0 peer_cpu=0 non2xx=0
declare -A results
measure() { # name our-path our-body peer-path peer-body
  local k side rps bad before report
  for k in $(seq "$rounds"); do
    for side in $([ $((k % 2)) = 1 ] && echo "ours peer" || echo "peer ours"); do
      if [ "$side" = ours ]; then
        before=$(cpu_seconds "$ours_pid")
        report=$(load "$ours" "$2" "$3")
        ours_cpu=$(awk -v a="$ours_cpu" -v b="$before" -v c="$(cpu_seconds "$ours_pid")" 'BEGIN { print a + c - b }')
      else
        before=$(cpu_seconds "$peer_pid")
        report=$(load "$peer_base" "$4" "$5")
        peer_cpu=$(awk -v a="$peer_cpu" -v b="$before" -v c="$(cpu_seconds "$peer_pid")" 'BEGIN { print a + c - b }')
      fi
      read -r rps bad <<<"$report"
      awk -v r="$rps" 'BEGIN { exit !(r > 0) }' ||
        { echo "bench/peer.sh: wrk measured no rate for $1 on $side" >&2; exit 1; }
      echo "   $1, round $k, $side: $rps req/s, $bad non-2xx" >&2
      results[$1.$side]+="$rps "
      non2xx=$((non2xx + bad))
    done
  done
}
# What the whole machine, and this script's children (wrk, curl, python3), spent meanwhile, so
# that other work on the two cores shows in the results.
machine_cpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }
children_cpu() { times | tail -1 | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }'; }
started=$(date +%s.%N) machine_before=$(machine_cpu) children_before=$(children_cpu)
ours_before=$(cpu_seconds "$ours_pid") peer_before=$(cpu_seconds "$peer_pid")
echo "== $rounds rounds a route, ${seconds} s each, ours and node-oidc-provider $peer_version taking turns"
measure token /oauth2/token "$grant" "$peer_token" "$grant"
# Fresh tokens for the two routes that take one, after the token runs.
ours_jwt=$(token "$ours" /oauth2/token)
peer_opaque=$(token "$peer_base" "$peer_token" "$opaque")
measure introspect /oauth2/introspect "token=$ours_jwt" "$peer_introspect" "token=$peer_opaque"
measure revoke /oauth2/revoke "token=$ours_jwt" "$peer_revoke" "token=$peer_opaque"
ours_memory=$(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$ours_pid/status")
peer_memory=$(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$peer_pid/status")
other=$(awk -v wall="$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" \
  -v machine="$(awk -v a="$machine_before" -v b="$(machine_cpu)" 'BEGIN { print b - a }')" \
  -v children="$(awk -v a="$children_before" -v b="$(children_cpu)" 'BEGIN { print b - a }')" \
  -v ours="$(awk -v a="$ours_before" -v b="$(cpu_seconds "$ours_pid")" 'BEGIN { print b - a }')" \
  -v peer="$(awk -v a="$peer_before" -v b="$(cpu_seconds "$peer_pid")" 'BEGIN { print b - a }')" \
  'BEGIN { o = (machine - children - ours - peer) / wall; printf "%.2f", o < 0 ? 0 : o }')
measured=$((rounds * 3 * seconds))

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
row() { # label name
  local a b
  a=$(echo "${results[$2.ours]}" | median)
  b=$(echo "${results[$2.peer]}" | median)
  awk -v l="$1" -v a="$a" -v b="$b" 'BEGIN { printf "| %s | %.0f | %.0f | %.2f× |\n", l, a, b, a / b }'
}
rounds_of() { echo "${results[$1.ours]% } / ${results[$1.peer]% }"; }
{
  echo "## Beside node-oidc-provider $peer_version (Node $(node --version)), the same wrk set-up"
  echo
  echo "Both in memory, on 127.0.0.1, \`wrk -t$threads -c$connections -d${seconds}s\` with \`bench/post.lua\` on the"
  echo "same 2 cores, client_secret_basic, ES256-signed JWT access tokens (\`bench/peer.sh\`). $rounds rounds a route,"
  echo "the servers taking turns; each figure is the median of its side's rounds. node-oidc-provider runs"
  echo "as Node runs by default: one process, its JavaScript on one thread (WebCrypto's ECDSA signing on"
  echo "libuv's pool); ours is one process whose tokio runtime uses both cores. The ratio is what this"
  echo "noisy, shared 2-core machine measures (ours ÷ node-oidc-provider), not a constant. Method:"
  echo "[ANALYSIS.md](ANALYSIS.md#beside-node-oidc-provider)."
  echo
  echo "| route | ours (req/s, median) | node-oidc-provider (req/s, median) | ratio |"
  echo "|---|---|---|---|"
  row "POST token, client_credentials (ES256 JWT)" token
  row "POST introspect (ours: that JWT, verified; peer: an opaque token, looked up)" introspect
  row "POST revoke, RFC 7009, the same token each time (as above)" revoke
  echo
  echo "node-oidc-provider refuses to introspect or revoke a JWT access token (400"
  echo "\`unsupported_token_type\`): those two rows give it an opaque token of the same grant, a lookup in"
  echo "its in-memory store without a signature check, where ours verifies an ES256 signature first. Nor"
  echo "does it store the JWTs it issues; ours records each one. Every round, ours / peer, req/s:"
  echo "token $(rounds_of token); introspect $(rounds_of introspect); revoke $(rounds_of revoke)."
  echo "CPU used while measured (user + system ÷ the ${measured} s of its runs): ours"
  echo "$(awk -v c="$ours_cpu" -v s="$measured" 'BEGIN { printf "%.2f", c / s }') cores, node-oidc-provider $(awk -v c="$peer_cpu" -v s="$measured" 'BEGIN { printf "%.2f", c / s }') cores; peak resident memory $ours_memory and $peer_memory."
  echo "Meanwhile everything else on the machine (not the two servers, wrk or this script) used $other of the"
  echo "2 cores on average, taken from both sides."
  [ "$non2xx" = 0 ] || echo "**$non2xx non-2xx responses** in these runs: the figures above count them."
  echo
} >>"$out"
echo "wrote the node-oidc-provider section to $out"
