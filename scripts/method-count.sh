#!/usr/bin/env bash
# Methods per type across production code (inherent and trait impls added
# together, wherever they are; test files and `#[cfg(test)]` modules left
# out), largest first, with the file that declares the type.
# Issue 9's bar is "no type with more than ~15 methods".
#   scripts/method-count.sh          every type with more than 15
#   scripts/method-count.sh 0        every type
#   scripts/method-count.sh 15 --check   also exit 1 when one is over
set -euo pipefail
cd "$(dirname "$0")/.."
limit="${1:-15}"
check="${2:-}"
files=$(git ls-files '*.rs' \
    | grep -Ev '(^|/)(tests|benches|fuzz)/|_tests\.rs$|(^|/)tests\.rs$|testkit\.rs$|(^|/)build\.rs$')
# shellcheck disable=SC2086
out=$(awk '
# Pass 1: where each type is declared, so two types of one name in
# different modules are counted apart.
pass == 1 {
    if (match($0, /^[[:space:]]*(pub(\([a-z]+\))? )?(struct|enum|trait) [A-Za-z_0-9]+/)) {
        d = substr($0, RSTART, RLENGTH); sub(/.* /, "", d)
        if (!((FILENAME, d) in declared)) { declared[FILENAME, d] = 1; ndecl[d]++; decl_file[d] = FILENAME }
    }
    next
}
FNR == 1 { depth = 0; skip = -1; pending_test = 0; nimpl = 0 }
{
    line = $0
    sub(/\/\/.*/, "", line)
    if (skip < 0 && line ~ /^[[:space:]]*#\[cfg\(test\)\]/) { pending_test = 1 }
    else if (skip < 0 && pending_test && line ~ /^[[:space:]]*(pub(\([a-z]+\))? )?mod [A-Za-z_0-9]+[[:space:]]*\{/) { skip = depth; pending_test = 0 }
    else if (line !~ /^[[:space:]]*(#|$)/) { pending_test = 0 }
    if (skip < 0) {
        if (line ~ /^[[:space:]]*(unsafe )?impl[<[:space:]]/ && line ~ /\{[[:space:]]*$/) {
            t = line
            sub(/[[:space:]]*(where.*)?\{[[:space:]]*$/, "", t)
            if (t ~ / for /) { sub(/.* for /, "", t) } else { sub(/^[[:space:]]*(unsafe )?impl(<[^>]*(<[^>]*>[^>]*)*>)?[[:space:]]+/, "", t) }
            sub(/<.*/, "", t); sub(/.*::/, "", t); gsub(/[[:space:]&]/, "", t)
            nimpl++; impl_type[nimpl] = t; impl_depth[nimpl] = depth
        } else if (nimpl > 0 && depth == impl_depth[nimpl] + 1 && line ~ /^[[:space:]]*(pub(\([a-z]+\))? )?(const )?(async )?(unsafe )?fn [a-z_0-9]+/) {
            t = impl_type[nimpl]
            home = ((FILENAME, t) in declared) ? FILENAME : (ndecl[t] == 1 ? decl_file[t] : "?")
            count[home ":" t]++
        }
    }
    n = split(line, ch, "")
    for (i = 1; i <= n; i++) {
        if (ch[i] == "{") depth++
        else if (ch[i] == "}") {
            depth--
            if (skip >= 0 && depth == skip) skip = -1
            if (nimpl > 0 && depth == impl_depth[nimpl]) nimpl--
        }
    }
}
END { for (k in count) { split(k, p, ":"); printf "%d\t%s\t%s\n", count[k], p[2], p[1] } }
' pass=1 $files pass=2 $files | sort -rn)
echo "$out" | awk -F'\t' -v l="$limit" '$1 > l'
if [ "$check" = "--check" ] && echo "$out" | awk -F'\t' -v l="$limit" '$1 > l { bad = 1 } END { exit !bad }'; then
    exit 1
fi
