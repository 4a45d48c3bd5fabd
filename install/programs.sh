#!/bin/sh
# programs.sh: prints the name of every program the workspace builds, one a line: each
# bin/*/Cargo.toml's [[bin]] names, or its package name when it has none. The installer,
# the quick start and the end-to-end tests all take their list of programs from here, so
# a program added to bin/ is installed, run and tested with no list to update.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
for manifest in "$repo"/bin/*/Cargo.toml; do
	awk '
		/^\[\[bin\]\]/ { inbin = 1; pkg = 0; next }
		/^\[package\]/ { pkg = 1; inbin = 0; next }
		/^\[/ { pkg = 0; inbin = 0; next }
		(pkg || inbin) && /^name[ \t]*=/ {
			gsub(/^name[ \t]*=[ \t]*"|".*$/, ""); if (inbin) bins = bins " " $0; else p = $0
		}
		END { print (bins != "" ? bins : p) }' "$manifest" | tr ' ' '\n' | sed '/^$/d'
done
