#!/usr/bin/env bash
# tokenizer-data.sh -- produce (and check) the BPE rank tables that
# src/run/tokenizer.c loads, from the npm package `tiktoken` pinned in
# tools/tokenizer/package-lock.json (the WASM build of OpenAI's Rust tiktoken;
# we use only its data files and, for reference encodings, its encoder).
#
#   scripts/tokenizer-data.sh [generate]   write share/tokenizer/{cl100k_base,o200k_base}.bpe
#   scripts/tokenizer-data.sh check        regenerate into a temp dir, compare with share/tokenizer
#   scripts/tokenizer-data.sh encode NAME  print the reference token ids of stdin (UTF-8), one line
#
# Output directory: $TOKENIZER_OUT (default share/tokenizer). The .bpe files are
# committed (2.3 MB in all) so that building and running assistd needs neither
# node nor the network; this script only has to run again when the pinned
# package changes, and `check` proves the committed files are its output.
#
# File format ("assistd-bpe 1"), one file per encoding:
#   assistd-bpe 1\n
#   name <encoding>\n
#   source tiktoken@<version>\n
#   count <N>\n                 ranks are 0..N-1, in file order
#   pattern <pre-tokenizer regex, as published by the package>\n
#   data\n
#   N records: <u8 length 1..255><length bytes of the token>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=tools/tokenizer
NAMES=(cl100k_base o200k_base)

need_node_modules() {
  command -v node >/dev/null 2>&1 || { echo "tokenizer-data: node is required (apt-get install nodejs npm)" >&2; exit 1; }
  if [ ! -d "$TOOLS/node_modules/tiktoken" ] || [ "$TOOLS/package-lock.json" -nt "$TOOLS/node_modules" ]; then
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# generate OUTDIR NAME...
generate() {
  local out=$1
  shift
  mkdir -p "$out"
  (cd "$TOOLS" && node --input-type=module - "$out" "$@") <<'EOF'
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
const [outDir, ...names] = process.argv.slice(2);
const pkgDir = 'node_modules/tiktoken';
const version = JSON.parse(readFileSync(`${pkgDir}/package.json`, 'utf8')).version;
for (const name of names) {
  const enc = JSON.parse(readFileSync(`${pkgDir}/encoders/${name}.json`, 'utf8'));
  // bpe_ranks: lines of "<first> <offset> <base64 token> <base64 token> ...";
  // the k-th token of a line has rank offset + k.
  const byRank = [];
  for (const line of enc.bpe_ranks.split('\n')) {
    if (!line) continue;
    const [, offStr, ...toks] = line.split(' ');
    const off = Number.parseInt(offStr, 10);
    toks.forEach((t, k) => {
      if (byRank[off + k] !== undefined) throw new Error(`${name}: rank ${off + k} twice`);
      byRank[off + k] = Buffer.from(t, 'base64');
    });
  }
  const seen = new Set();
  for (let r = 0; r < byRank.length; r++) {
    const b = byRank[r];
    if (b === undefined) throw new Error(`${name}: ranks are not contiguous (missing ${r})`);
    if (b.length < 1 || b.length > 255) throw new Error(`${name}: token ${r} has length ${b.length}`);
    const key = b.toString('latin1');
    if (seen.has(key)) throw new Error(`${name}: duplicate token at rank ${r}`);
    seen.add(key);
  }
  if (/[\r\n]/.test(enc.pat_str)) throw new Error(`${name}: pattern has a line break`);
  const header = `assistd-bpe 1\nname ${name}\nsource tiktoken@${version}\ncount ${byRank.length}\n` +
    `pattern ${enc.pat_str}\ndata\n`;
  const parts = [Buffer.from(header, 'utf8')];
  for (const b of byRank) parts.push(Buffer.from([b.length]), b);
  const file = resolve(process.env.ROOT, outDir, `${name}.bpe`);
  writeFileSync(file, Buffer.concat(parts));
  console.log(`tokenizer-data: ${file}: ${byRank.length} tokens`);
}
EOF
}

cmd=${1:-generate}
case "$cmd" in
generate)
  need_node_modules
  ROOT=$ROOT generate "${TOKENIZER_OUT:-share/tokenizer}" "${NAMES[@]}"
  ;;
check)
  need_node_modules
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  ROOT=$ROOT generate "$tmp" "${NAMES[@]}" >/dev/null
  for n in "${NAMES[@]}"; do
    cmp "$tmp/$n.bpe" "${TOKENIZER_OUT:-share/tokenizer}/$n.bpe"
  done
  echo "tokenizer-data: share/tokenizer is up to date"
  ;;
encode)
  [ $# -eq 2 ] || { echo "usage: $0 encode cl100k_base|o200k_base < text" >&2; exit 2; }
  need_node_modules
  # The program goes in with -e so that stdin stays the text to encode.
  read -r -d '' js <<'EOF' || true
import { readFileSync } from 'node:fs';
import { get_encoding } from 'tiktoken';
const enc = get_encoding(process.argv[1]);
const text = readFileSync(0, 'utf8');
console.log(Array.from(enc.encode_ordinary(text)).join(' '));
enc.free();
EOF
  (cd "$TOOLS" && node --input-type=module -e "$js" "$2")
  ;;
vectors)
  # Prints the generated block of tests/unit/test_tokenizer.c: the short
  # strings with their reference ids, and the reference count and FNV-1a hash
  # of the ids of long generated texts (the generators are mirrored in C).
  need_node_modules
  read -r -d '' js <<'EOF' || true
import { get_encoding } from 'tiktoken';
const short = [
  ['ascii', 'Hello, world! This is a test.'],
  ['numbers', 'In 2024, 1234567 people paid $3.50 each (total: 4,320,198.25).'],
  ['digits', '1 12 123 1234 12345 123456 3.14159 1e-7 \u0661\u0662\u0663 \u00b2\u00b3 \u216b'],
  ['punct_runs', '!!!???...;;;:::---___===+++***&&&%%%$$$###@@@ ?!? ... --> <=> //'],
  ['spaces', 'a  b   c\t\td\n\ne \n \n  f   \r\n\r\n   '],
  ['lead_trail', '     word     '],
  ['newlines', '\n\n\n\nline\n\n\r\r\n'],
  ['contractions', "I'm sure they'll say we've done what you'd've said; it's DON'T WON'T I'LL Ma'am"],
  ['contractions_case', "HELLO'S WORLD'LL Don'T we'Ve THEY'RE"],
  ['quotes', 'It\u2019s \u201cquoted\u201d \u2014 dash \u2013 \u2026'],
  ['emoji', 'Party \u{1F389}\u{1F389}\u{1F389} time \u{1F469}\u200d\u{1F4BB} flags \u{1F1EB}\u{1F1F7}\u{1F1EF}\u{1F1F5} \u2764\ufe0f \u{1F44D}\u{1F3FD}'],
  ['cjk', '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002\u4e2d\u6587\u6587\u672c\uff0c\u5305\u62ec\u6807\u70b9\u3002\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4.'],
  ['accented', '\u00dcn\u00efc\u00f6d\u00e9 fa\u00e7ade na\u00efve caf\u00e9 r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u00d8resund \u017c\u00f3\u0142\u0107'],
  ['combining', 'Cafe\u0301 nai\u0308ve A\u030a e\u0301\u0301\u0301'],
  ['scripts', '\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e \u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440'],
  ['titlecase', '\u01c5ungla \u01c8 \u03a9mega \u03b2eta \u1f88\u1f00'],
  ['code_c', 'int main(void) {\n    for (int i = 0; i < 10; i++) {\n        printf("%d\\n", i);\n    }\n    return 0;\n}\n'],
  ['code_py', 'def f(x):\n\treturn [y ** 2 for y in range(x) if y % 3 == 0]  # comment\n'],
  ['json', '{"key": [1, 2.5, -3e10, true, null], "nested": {"a": "b"}}'],
  ['url', 'https://example.com/path/to/file.html?query=1&x=y#frag /usr/local/bin// a/b'],
  ['camel', 'CamelCaseIdentifier HTTPServerError parseJSONResponse XMLHttpRequest'],
  ['markdown', '# Title\n\n- item **bold** _it_ `code`\n\n| a | b |\n|---|---|\n'],
  ['special_text', '<|endoftext|> <|fim_prefix|><|endofprompt|>'],
  ['unicode_space', 'a\u00a0b\u2003c\u3000d\u0085e f\u180eg x \u180eword\ufeffh\u2028i\u000bj\u000ck'],
  ['long_s', "it'\u017f \u212aelvin 'S '\u017f"],
  ['nul', 'a\u0000b\u0000 \u0000'],
  ['space_run', '                                x'],
  ['dash_run', '------------------------------------------------------------'],
  ['one_byte', 'a'],
  ['one_char', '\u00e9'],
  ['one_emoji', '\u{1F389}'],
];
// Long texts: generators mirrored by the C test (same LCG, same parts).
const parts = [
  'The quick brown fox jumps over the lazy dog. ', 'Ünïcödé façade — naïve café; ',
  '日本語のテキストと中文文本。', 'emoji 🎉🚀👩‍💻 ', 'int main(void) { return 0x1F; }\n',
  '    indented\tline\r\n', "I'm sure they'll say WE'VE done it! ", '1234567 + 89 = 1234656\n\n',
  '   ', '!!!???...', 'CamelCaseIdentifierHTTPServer ', '\u00a0nbsp\u2003emspace ',
  'Привет, мир! ', 'مرحبا ', '\n', 'x', '  \n  ', '"quoted", \'single\' ',
];
const lcg = (seed) => { let x = seed >>> 0; return () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x >>> 16; }; };
const letters = (seed, n, mixed) => {
  const r = lcg(seed); let s = '';
  for (let i = 0; i < n; i++) { const v = r(); s += String.fromCharCode((mixed && (v & 1) ? 65 : 97) + ((v >> 1) % 26)); }
  return s;
};
const corpus = (seed, target) => {
  const r = lcg(seed); const out = []; let bytes = 0;
  while (bytes < target) {
    const v = r(); const p = parts[v % parts.length]; out.push(p); bytes += Buffer.byteLength(p);
    if ((v & 7) === 0) { const num = String(r() * 7); out.push(num); bytes += num.length; }
  }
  return out.join('');
};
const long = [
  ['GEN_REPEAT', '"a"', 10000, 0, 'a'.repeat(10000)],
  ['GEN_REPEAT', '" "', 5000, 0, ' '.repeat(5000)],
  ['GEN_REPEAT', '"\\n"', 3000, 0, '\n'.repeat(3000)],
  ['GEN_REPEAT', '"0123456789"', 1000, 0, '0123456789'.repeat(1000)],
  ['GEN_REPEAT', '"\\360\\237\\216\\211"', 2000, 0, '\u{1F389}'.repeat(2000)],
  ['GEN_REPEAT', '"ab "', 3000, 0, 'ab '.repeat(3000)],
  ['GEN_LETTERS', 'NULL', 20000, 7, letters(7, 20000, false)],
  ['GEN_LETTERS_MIXED', 'NULL', 20000, 11, letters(11, 20000, true)],
  ['GEN_CORPUS', 'NULL', 100000, 12345, corpus(12345, 100000)],
];
const cstr = (s) => {
  let o = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x22 || b === 0x5c) o += '\\' + String.fromCharCode(b);
    else if (b === 0x3f) o += '\\?';
    else if (b === 10) o += '\\n';
    else if (b === 9) o += '\\t';
    else if (b >= 0x20 && b < 0x7f) o += String.fromCharCode(b);
    else o += '\\' + b.toString(8).padStart(3, '0');
  }
  return o + '"';
};
const wrap = (items, indent) => {
  const lines = []; let cur = indent;
  for (const it of items) {
    if (cur.length + it.length + 2 > 98 && cur.trim()) { lines.push(cur.replace(/ $/, '')); cur = indent; }
    cur += it + ', ';
  }
  if (cur.trim()) lines.push(cur.replace(/, $/, ','));
  return lines.join('\n');
};
const fnv = (ids) => { let h = 2166136261; for (const id of ids) h = Math.imul(h ^ id, 16777619) >>> 0; return h; };
const encs = { cl: get_encoding('cl100k_base'), o2: get_encoding('o200k_base') };
const out = [];
out.push('/* BEGIN GENERATED by scripts/tokenizer-data.sh vectors (tiktoken@' +
  JSON.parse((await import('node:fs')).readFileSync('node_modules/tiktoken/package.json', 'utf8')).version + ') */');
for (const [name, s] of short)
  for (const k of ['cl', 'o2']) {
    const ids = Array.from(encs[k].encode_ordinary(s));
    out.push(`static const uint32_t ${k}_${name}[] = {\n${wrap(ids.map(String), '    ')}\n};`);
  }
out.push('static const short_vec short_vecs[] = {');
for (const [name, s] of short) {
  const n = Buffer.byteLength(s), c = encs.cl.encode_ordinary(s).length, o = encs.o2.encode_ordinary(s).length;
  out.push(`    {"${name}", ${cstr(s)}, ${n}, cl_${name}, ${c}, o2_${name}, ${o}},`);
}
out.push('};');
out.push('static const char *const corpus_parts[] = {');
out.push(wrap(parts.map(cstr), '    '));
out.push('};');
out.push('static const long_vec long_vecs[] = {');
for (const [gen, unit, n, seed, text] of long) {
  const cl = Array.from(encs.cl.encode_ordinary(text)), o2 = Array.from(encs.o2.encode_ordinary(text));
  out.push(`    {${gen}, ${unit}, ${n}, ${seed}, ${Buffer.byteLength(text)}, ${cl.length}, ${fnv(cl)}u, ${o2.length}, ${fnv(o2)}u},`);
}
out.push('};');
out.push('/* END GENERATED */');
console.log(out.join('\n'));
encs.cl.free(); encs.o2.free();
EOF
  (cd "$TOOLS" && node --input-type=module -e "$js")
  ;;
*)
  echo "usage: $0 [generate|check|encode NAME|vectors]" >&2
  exit 2
  ;;
esac
