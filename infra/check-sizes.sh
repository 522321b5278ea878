#!/usr/bin/env bash
# usage: check-sizes.sh BUDGET_BYTES FILE...
# Each FILE is a function package (bootstrap.zip) or a bootstrap, zipped here as `sam deploy`
# would. Prints every size and fails when one is over the budget.
set -euo pipefail
budget=$1
shift
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
over=0
for file in "$@"; do
  case "$file" in
    *.zip) zipped=$file ;;
    *) zipped="$scratch/$(basename "$(dirname "$file")").zip"; (cd "$(dirname "$file")" && zip -q -X "$zipped" bootstrap) ;;
  esac
  size=$(stat -c %s "$zipped")
  mark=""
  if ((size > budget)); then mark="  OVER the budget of $budget bytes"; over=1; fi
  printf '%10d  %s%s\n' "$size" "$file" "$mark"
done
exit "$over"
