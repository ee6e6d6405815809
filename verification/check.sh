#!/usr/bin/env bash
# Checks verification/rotation.pml with spin, exhaustively within the model's bounds:
#   - the model as it is, for a multi-key and for a single-key provider: no invariant violated;
#   - each mutant (MUTANT=1..6 breaks the rule one invariant rests on): spin must find a
#     violation of that invariant's assertion, and the counterexample it prints is shown.
# Usage: verification/check.sh [-D NAME=VALUE ...]   e.g. -D TMAX=6 -D MAXL=2 for larger bounds
# (the defaults are what CI runs; see the README for the bounds and the time they take).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v spin >/dev/null || { echo "check: spin not found (apt-get install spin)" >&2; exit 1; }
defs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -D) defs+=("-D$2"); shift 2 ;;
    *) echo "usage: $0 [-D NAME=VALUE ...]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/rotation.pml" "$work/"
cd "$work"

# Builds and runs the verifier for one variant; its report goes to $1.log.
verify() {
  local name=$1
  shift
  spin "$@" "${defs[@]}" -a rotation.pml >"$name.spin" 2>&1 ||
    { cat "$name.spin" >&2; echo "check: spin -a failed for $name" >&2; exit 1; }
  gcc -O2 -DSAFETY -DCOLLAPSE -w -o "pan-$name" pan.c
  ./"pan-$name" -m400000 >"$name.log" 2>&1 || true
  [ ! -f rotation.pml.trail ] || mv rotation.pml.trail "$name.trail"
}

failed=0
for variant in multi-key single-key; do
  args=()
  [ "$variant" = single-key ] && args=(-DSINGLE_KEY)
  verify "$variant" "${args[@]}"
  stats=$(grep -E "states, stored|elapsed time" "$variant.log" | tr -s ' ' | paste -sd' ')
  if grep -q "errors: 0" "$variant.log" && ! grep -q "max search depth too small" "$variant.log"; then
    echo "ok   $variant: every invariant holds ($stats)"
  else
    echo "FAIL $variant: spin found a violation or could not search everything" >&2
    grep -E "assertion violated|errors:|too small" "$variant.log" >&2 || true
    [ -f "$variant.trail" ] && cp "$variant.trail" "$variant.pml.trail" && cp rotation.pml "$variant.pml" &&
      spin "${args[@]}" "${defs[@]}" -t -p -g "$variant.pml" 2>&1 | tail -n 40 >&2
    failed=1
  fi
done

# Each mutant must trip the assertion of the invariant it breaks (text as spin prints it).
expect=(
  ""
  "(ncur<=1)"                                              # 1: two CURRENT versions
  "accepted[v]"                                            # 2: promoted without a probe
  "((st[v]==2)||((st[v]==3)&&(now<retires_at[v])))"        # 3: renewed past the retire time
  "((leases[k]==0)||(now>=(retires_at[k]+2)))"             # 4: retired with leases before the deadline
  "((st[v]==5)||((st[v]==4)&&(leases[v]==0)))"             # 5: revoked while still in service
  "((promoted[k]<=1)&&(quarantined[k]<=1))"                # 6: a stale leader's decision applied again
)
for m in 1 2 3 4 5 6; do
  verify "mutant$m" "-DMUTANT=$m"
  if grep -qF "assertion violated ${expect[$m]}" "mutant$m.log"; then
    echo "ok   mutant $m: spin finds the violation of invariant $m; its counterexample ends:"
    cp "mutant$m.trail" rotation.pml.trail
    # The steps that changed the story (versions, leases, time, leadership, decisions), then the
    # assertion spin stopped at. Replica(0) is pid 1, Replica(1) pid 2.
    spin "-DMUTANT=$m" "${defs[@]}" -t -p rotation.pml 2>&1 |
      grep -E "\[(st\[[a-z]+\] = |leases\[v\] = |now = |leader = |intent_kind\[r\] = [1-9]|works\[v\] = )|assertion violated" |
      sed -E 's/^ *[0-9]+:\s+proc +([0-9]+) \(([A-Za-z]+):[0-9]+\) rotation.pml:([0-9]+) \(state [0-9]+\)\s+/\2 (pid \1), line \3: /' |
      tail -n 12 | sed 's/^/       /'
    rm -f rotation.pml.trail
  else
    echo "FAIL mutant $m: expected spin to report 'assertion violated ${expect[$m]}'" >&2
    grep -E "assertion violated|errors:" "mutant$m.log" >&2 || true
    failed=1
  fi
done
exit $failed
