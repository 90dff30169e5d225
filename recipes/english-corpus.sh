#!/usr/bin/env bash
# Builds an unlabelled English corpus for MLM pretraining from two Debian packages (no hub needed):
# WordNet 3.0's glosses and example sentences ("word: gloss; "example"") and the fortune cookies
# of the `fortunes` package, one text a line. About 2.0M words (132k texts); zoo reads a .txt file with no tabs
# as unlabelled text, e.g. --set "task_options.extra_data=[flickr8k,runs/corpus/english.txt]".
# Usage: recipes/english-corpus.sh [output file, default runs/corpus/english.txt]
set -euo pipefail
out=${1:-runs/corpus/english.txt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get -o APT::Sandbox::User=root download wordnet-base fortunes >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
mkdir -p "$(dirname "$out")"
{
  # data.* lines: offset, lexfile, type, word count (hex), words..., pointers | gloss. The
  # licence header lines start with spaces.
  for part in noun verb adj adv; do
    awk -F' \\| ' '!/^  / { split($1, f, " "); word = f[5]; gsub(/_/, " ", word); sub(/\(.*\)$/, "", word)
                           gloss = $2; sub(/[ \t]+$/, "", gloss); print tolower(word) ": " gloss }' \
      "$work/root/usr/share/wordnet/data.$part"
  done
  # Fortune files (those without a suffix) hold texts separated by lines of "%"; ascii-art is pictures.
  for file in "$work"/root/usr/share/games/fortunes/*; do
    case $(basename "$file") in *.*|ascii-art) continue ;; esac
    awk 'BEGIN { RS = "\n%\n" } { gsub(/[ \t\n]+/, " "); sub(/^ /, ""); sub(/ $/, ""); if (length) print }' "$file"
  done
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(wc -l <"$out") texts, $(wc -w <"$out") words"
