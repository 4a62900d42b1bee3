#!/usr/bin/env bash
# Layering rule: core/, crdt/ and consistency/ are pure, deterministic libraries.
#   * no asio, gRPC (grpc/, grpcpp/, *.grpc.pb.h) or RocksDB headers;
#   * no threads, clocks or ambient randomness: std::thread, std::jthread, std::async,
#     pthread_create, *_clock::now, absl::Now, random_device, time(, gettimeofday,
#     clock_gettime, rand(, srand(;
#   * their CMakeLists.txt do not link gRPC, RocksDB or asio.
# Comments are ignored; string literals are ignored for everything except #include lines.
#
# Usage: tests/layering_test.sh <source dir>
# Exit 0 and "layering: ok (N files checked)" on success; exit 1 listing file:line otherwise.
set -u

src="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
if [ ! -d "$src/core" ]; then
  echo "layering: $src/core not found (pass the source dir as the first argument)" >&2
  exit 1
fi
command -v perl >/dev/null 2>&1 || { echo "layering: perl is required" >&2; exit 1; }

layers=(core crdt consistency)

# strip <keep_strings 0|1> <file>: prints the file with comments blanked (line numbers kept)
# and, unless keep_strings=1, string/char literal contents removed.
strip() {
  perl -0777 -e '
    my $keep = shift @ARGV;
    local $/; my $t = <>;
    $t =~ s{(/\*.*?\*/)|(//[^\n]*)|("(?:\\.|[^"\\\n])*")|('"'"'(?:\\.|[^'"'"'\\\n])*'"'"')}{
      defined $1 ? do { (my $c = $1) =~ s/[^\n]//g; $c } :
      defined $2 ? "" :
      defined $3 ? ($keep ? $3 : "\"\"") :
      "'"'"''"'"'"
    }gse;
    print $t;' "$1" "$2"
}

# Rules: "description|PCRE". Include rules run on text with strings kept.
include_rules=(
  'asio header|^\s*#\s*include\s*[<"]\s*(asio(\.hpp|/)|boost/asio)'
  'gRPC header|^\s*#\s*include\s*[<"]\s*(grpc/|grpcpp/|grpc\+\+/|[^">]*\.grpc\.pb\.h)'
  'RocksDB header|^\s*#\s*include\s*[<"]\s*rocksdb/'
)
code_rules=(
  'std::thread|\bstd::thread\b'
  'std::jthread|\bstd::jthread\b'
  'std::async|\bstd::async\b'
  'pthread_create|\bpthread_create\b'
  'clock read (_clock::now)|_clock::now\b'
  'clock read (absl::Now)|\babsl::(Now|GetCurrentTimeNanos)\b'
  'random_device|\brandom_device\b'
  'time(|(?<![\w.])(?<!->)time\s*\('
  'gettimeofday|\bgettimeofday\b'
  'clock_gettime|\bclock_gettime\b'
  'rand(|(?<![\w.])(?<!->)rand\s*\('
  'srand(|(?<![\w.])(?<!->)srand\s*\('
)
cmake_rule='grpc|rocksdb|asio'

violations=0
checked=0
report() {  # file line rule
  local text
  text=$(sed -n "${2}p" "$1" | sed 's/^[[:space:]]*//' | cut -c1-160)
  echo "${1#$src/}:$2: $3: $text"
  violations=$((violations + 1))
}

scan() {  # file stripped_text rules...
  local file=$1 text=$2; shift 2
  local rule desc re line
  for rule in "$@"; do
    desc=${rule%%|*}
    re=${rule#*|}
    while IFS=: read -r line _; do
      [ -n "$line" ] && report "$file" "$line" "$desc"
    done < <(printf '%s\n' "$text" | grep -nP -- "$re" || true)
  done
}

for layer in "${layers[@]}"; do
  dir="$src/$layer"
  [ -d "$dir" ] || continue
  while IFS= read -r -d '' f; do
    checked=$((checked + 1))
    scan "$f" "$(strip 1 "$f")" "${include_rules[@]}"
    scan "$f" "$(strip 0 "$f")" "${code_rules[@]}"
  done < <(find "$dir" -type f \( -name '*.h' -o -name '*.hh' -o -name '*.hpp' -o \
             -name '*.hxx' -o -name '*.ipp' -o -name '*.inc' -o -name '*.c' -o -name '*.cc' -o \
             -name '*.cpp' -o -name '*.cxx' \) -print0 | sort -z)
  while IFS= read -r -d '' f; do
    checked=$((checked + 1))
    # CMake: drop comments, then look for the forbidden dependencies (case-insensitive).
    while IFS=: read -r line _; do
      [ -n "$line" ] && report "$f" "$line" "links gRPC/RocksDB/asio"
    done < <(sed 's/#.*$//' "$f" | grep -niE -- "$cmake_rule" || true)
  done < <(find "$dir" -type f \( -name 'CMakeLists.txt' -o -name '*.cmake' \) -print0 | sort -z)
done

if [ "$violations" -ne 0 ]; then
  echo "layering: FAILED ($violations violations in $checked files checked)"
  exit 1
fi
echo "layering: ok ($checked files checked)"
exit 0
