#!/usr/bin/env bash
# clang-format over all of funcie's C and C++ files, with the style in .clang-format.
#   bash scripts/format.sh          reformat in place
#   bash scripts/format.sh --check  change nothing; list the files that need it and fail
set -euo pipefail
cd "$(dirname "$0")/.."

mode=fix
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

clang_format=${CLANG_FORMAT:-clang-format}
command -v "$clang_format" >/dev/null || { echo "format.sh: $clang_format not found (run scripts/deps.sh)" >&2; exit 1; }

dirs=(src include examples tests bench fuzz)
patterns=('*.cpp' '*.hpp' '*.cc' '*.h')
files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Quoted pathspecs: git's own glob, where '*' crosses '/' (src/*.cpp is every .cpp under
  # src/). Left to the shell, they matched only the files directly in each folder.
  pathspecs=()
  for d in "${dirs[@]}"; do for p in "${patterns[@]}"; do pathspecs+=("$d/$p"); done; done
  # Tracked and new files alike, never what .gitignore leaves out (node_modules, build trees).
  while IFS= read -r f; do
    [[ -f $f ]] && files+=("$f")
  done < <(git ls-files --cached --others --exclude-standard -- "${pathspecs[@]}" | sort -u)
else
  while IFS= read -r f; do files+=("$f"); done < <(
    find "${dirs[@]}" -type d -name node_modules -prune -o -type f \
      \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cc' -o -name '*.h' \) -print 2>/dev/null | sort)
fi

if [[ ${#files[@]} -eq 0 ]]; then
  echo "format.sh: no C++ files found" >&2
  exit 1
fi

if [[ $mode == fix ]]; then
  "$clang_format" -i "${files[@]}"
  echo "format.sh: formatted ${#files[@]} files"
  exit 0
fi

bad=()
for f in "${files[@]}"; do
  "$clang_format" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [[ ${#bad[@]} -gt 0 ]]; then
  echo "format.sh: ${#bad[@]} of ${#files[@]} files are not clang-formatted:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "run 'bash scripts/format.sh' to fix them" >&2
  exit 1
fi
echo "format.sh: all ${#files[@]} files are clang-formatted"
