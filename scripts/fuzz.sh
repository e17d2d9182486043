#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of the module (or those matching a
# pattern) for a fixed time each, a few at a time, and prints one line per
# target with its result. A crasher is written by the Go toolchain into the
# package's testdata/fuzz/<Target>/ and fails the run.
#
# Usage: scripts/fuzz.sh [-t DURATION] [-j JOBS] [-p WORKERS] [-m MINIMIZE] [-o LOGDIR] [REGEXP]
#   -t  time per target, as go test -fuzztime takes it (default 2m)
#   -m  -fuzzminimizetime (default 10s; Go's 60s default spends most of a
#       short run shrinking the large seeds taken from wire captures)
#   -j  targets run at once (default 2)
#   -p  fuzzing workers per target, go test -parallel (default 1)
#   -o  directory for one log per target (default: a new temporary one)
#   REGEXP selects targets by "package/Target" (default: all)
#
# Example (what the hardening note ran, 2 cores):
#   scripts/fuzz.sh -t 2m -j 2 -p 1
set -euo pipefail

time=2m jobs=2 workers=1 minimize=10s logdir="" pattern="."
while getopts "t:j:p:m:o:h" opt; do
	case $opt in
	t) time=$OPTARG ;;
	j) jobs=$OPTARG ;;
	p) workers=$OPTARG ;;
	m) minimize=$OPTARG ;;
	o) logdir=$OPTARG ;;
	*) sed -n '2,18p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] && pattern=$1

cd "$(dirname "$0")/.."
[ -n "$logdir" ] || logdir=$(mktemp -d "${TMPDIR:-/tmp}/bitsremote-fuzz.XXXXXX")
mkdir -p "$logdir"

# Every package with a fuzz target, then its targets as go test lists them.
targets=()
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	pkg=./${dir#./}
	for name in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		if [[ "$pkg/$name" =~ $pattern ]]; then
			targets+=("$pkg $name")
		fi
	done
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz target matches $pattern" >&2
	exit 2
fi
echo "fuzz.sh: ${#targets[@]} targets, $time each, $jobs at a time, $workers worker(s) each, minimizing for $minimize; logs in $logdir"

run_one() {
	local pkg=$1 name=$2 time=$3 workers=$4 minimize=$5 logdir=$6
	local log="$logdir/$(echo "${pkg#./}" | tr / _)_$name.log"
	local start=$SECONDS
	if go test -run '^$' -fuzz "^$name\$" -fuzztime "$time" -fuzzminimizetime "$minimize" -parallel "$workers" "$pkg" >"$log" 2>&1; then
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
		printf 'ok    %-40s %-28s %4ds  execs %s\n' "${pkg#./}" "$name" $((SECONDS - start)) "${execs:-?}"
	else
		printf 'FAIL  %-40s %-28s %4ds  see %s\n' "${pkg#./}" "$name" $((SECONDS - start)) "$log"
		return 1
	fi
}
export -f run_one

status=0
printf '%s\n' "${targets[@]}" |
	xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1" '"$time $workers $minimize $logdir" || status=1
if [ $status -ne 0 ]; then
	echo "fuzz.sh: some targets failed (crashers are in their testdata/fuzz directories)" >&2
fi
exit $status
