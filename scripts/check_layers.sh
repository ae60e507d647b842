#!/usr/bin/env bash
# check_layers.sh SOURCE_DIR BUILD_DIR - the rules of docs/architecture.md
# that a compiler does not enforce, checked over the tree and the objects
# built from it (ctest test_layers runs it):
#
#  1. who may include whom: libcommon includes only its own headers (no
#     business rule, no generated message); libdomain its own, libcommon's
#     and the generated messages; a program (consumers/X, producers/X) those
#     and the files of its own folder, never another program's; tools may
#     read a program's settings table (settings.h) and nothing else of it.
#  2. no circle between the translation units of one target: a file that
#     holds a dispatch table does not also hold the helpers its handlers call
#     back (nm over the target's objects: A uses what B defines, and B,
#     directly or through others, what A defines).
#
# Exits 1 naming every file and include, or every circle, at fault.
set -euo pipefail

src=${1:?usage: check_layers.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: check_layers.sh SOURCE_DIR BUILD_DIR}
bad=0

# ------------------------------------------------------------- 1. includes

# include_ok FILE NAME: is `#include "NAME"` in FILE allowed?
include_ok() {
  local file=$1 name=$2 dir part
  dir=$(dirname "$file")
  part=${file#"$src"/}
  case $part in
    libcommon/*)
      [[ $name == linli/* || -e $dir/$name ]]
      return ;;
    libdomain/*)
      [[ $name == linli/* || $name == domain/* || $name == *.pb-c.h ||
         -e $dir/$name ]]
      return ;;
    tools/*)
      [[ $name == linli/* || $name == domain/* || $name == *.pb-c.h ||
         $name =~ ^(consumers|producers)/[a-z_]+/settings\.h$ ||
         -e $dir/$name ]]
      return ;;
    consumers/* | producers/*)
      # Its own folder only: a name with a slash that is not linli/ or
      # domain/ reaches into another part of the tree.
      [[ $name == linli/* || $name == domain/* || $name == *.pb-c.h ||
         ($name != */* && -e $dir/$name) ]]
      return ;;
  esac
  return 0
}

while IFS= read -r -d '' f; do
  while IFS= read -r line; do
    name=${line#*\"}
    name=${name%%\"*}
    if ! include_ok "$f" "$name"; then
      echo "layers: ${f#"$src"/}: #include \"$name\" crosses a boundary" \
           "(docs/architecture.md: who may use whom)"
      bad=1
    fi
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$f" || true)
done < <(find "$src/libcommon" "$src/libdomain" "$src/consumers" \
           "$src/producers" "$src/tools" -type f \( -name '*.c' -o -name '*.h' \) \
           -print0)

# -------------------------------------------------------------- 2. circles

checked=0
while IFS= read -r -d '' tdir; do
  objs=()
  while IFS= read -r -d '' o; do objs+=("$o"); done \
    < <(find "$tdir" -name '*.c.o' -print0 | sort -z)
  ((${#objs[@]} > 1)) || continue
  # Targets of the tree's own sources only (not CMake's compiler probes).
  case $tdir in */CMakeFiles/CMake*) continue ;; esac
  checked=$((checked + 1))
  out=$(for o in "${objs[@]}"; do
          nm "$o" | awk -v o="${o#"$tdir"/}" \
            'NF == 3 && $2 ~ /^[TDBRC]$/ { print "D", o, $3 }
             NF == 2 && $1 == "U"        { print "U", o, $2 }'
        done | awk '
    $1 == "D" { def[$3] = $2; units[$2] = 1; next }
    { units[$2] = 1; use[++n] = $2; sym[n] = $3 }
    END {
      for (i = 1; i <= n; i++)
        if ((sym[i] in def) && def[sym[i]] != use[i]) {
          a = use[i]; b = def[sym[i]]
          if (!((a, b) in edge)) { edge[a, b] = 1; why[a, b] = sym[i] }
        }
      for (u in units) reach[u, u] = 0
      for (k in units) for (i in units) if ((i, k) in edge || (i, k) in reach)
        for (j in units) if ((k, j) in edge || (k, j) in reach) reach[i, j] = 1
      for (a in units) for (b in units)
        if (a < b && ((a, b) in edge) && (((b, a) in edge) || reach[b, a]))
          printf "%s uses %s of %s, and %s reaches back to %s\n",
                 a, why[a, b], b, b, a
    }')
  if [[ -n $out ]]; then
    t=${tdir#"$build"/}
    while IFS= read -r l; do
      echo "layers: circle in ${t%.dir}: $l"
    done <<<"$out"
    bad=1
  fi
done < <(find "$build" -type d -name '*.dir' -path '*/CMakeFiles/*' -print0)

if ((checked == 0)); then
  echo "layers: no objects under $build (build the tree first)"
  exit 1
fi
((bad == 0)) && echo "layers: includes follow docs/architecture.md;" \
  "no circle in $checked targets"
exit "$bad"
