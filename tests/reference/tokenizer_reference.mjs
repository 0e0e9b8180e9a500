// Writes the golden BPE encodings under tests/fixtures/tokenizers/ with Hugging Face's
// JavaScript port of `tokenizers` (@huggingface/tokenizers 0.2.0), which test_io_tokenizer_bpe
// compares ressa's tokenizer against.
//
// For each case (a tokenizer.json + tokenizer_config.json, optionally edited by VARIANTS below)
// and each line of corpus.jsonl it writes one JSONL line to <case>.golden.jsonl:
//   {"ids": encode(s, add_special_tokens=true), "plain": encode(s, add_special_tokens=false),
//    "dec": decode(ids), "skip": decode(ids, skip_special_tokens=true)}
// "plain" is left out where it equals "ids", "skip" where it equals "dec" (smaller fixtures);
// "dec"/"skip" are "" for an empty id list (the JS decode refuses one).
//
// Run (node >= 18; the package lives outside the repository):
//   mkdir -p /tmp/tokref && cd /tmp/tokref && npm install @huggingface/tokenizers@0.2.0
//   TOKENIZERS_JS=/tmp/tokref/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs \
//     node tests/reference/tokenizer_reference.mjs tests/fixtures/tokenizers
import fs from "node:fs";
import path from "node:path";

const { Tokenizer } = await import(process.env.TOKENIZERS_JS ?? "@huggingface/tokenizers");
const dir = process.argv[2] ?? "tests/fixtures/tokenizers";

// The "phi3_metaspace" case is phi-3's file turned into the Metaspace layout of newer Llama /
// Mistral files: no normalizer, a Metaspace pre-tokenizer (prepend_scheme "first", no split),
// a TemplateProcessing post-processor that adds <s>, and llava-hf's extra added tokens <image>
// and <pad>. test_io_tokenizer_bpe.cpp applies the same edit (phi3_metaspace_json()).
function phi3_metaspace(tok) {
  tok.normalizer = null;
  tok.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
  tok.post_processor = {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
           { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
  };
  const extra = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
                                     normalized: false, special: true });
  tok.added_tokens.push(extra(32011, "<image>"), extra(32012, "<pad>"));
  return tok;
}
const CASES = [
  { name: "qwen2", dir: "qwen2" },
  { name: "phi3", dir: "phi3" },
  { name: "phi3_metaspace", dir: "phi3", edit: phi3_metaspace },
];

const corpus = fs.readFileSync(path.join(dir, "corpus.jsonl"), "utf8")
  .split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
for (const c of CASES) {
  let tok = JSON.parse(fs.readFileSync(path.join(dir, c.dir, "tokenizer.json"), "utf8"));
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, c.dir, "tokenizer_config.json"), "utf8"));
  if (c.edit) tok = c.edit(tok);
  const t = new Tokenizer(tok, cfg);
  const dec = (ids, skip) => (ids.length === 0 ? "" : t.decode(ids, { skip_special_tokens: skip }));
  const out = corpus.map((s) => {
    const ids = t.encode(s, { add_special_tokens: true }).ids;
    const plain = t.encode(s, { add_special_tokens: false }).ids;
    const line = { ids, dec: dec(ids, false) };
    if (JSON.stringify(plain) !== JSON.stringify(ids)) line.plain = plain;
    const skip = dec(ids, true);
    if (skip !== line.dec) line.skip = skip;
    return JSON.stringify(line);
  });
  fs.writeFileSync(path.join(dir, `${c.name}.golden.jsonl`), out.join("\n") + "\n");
  console.log(`${c.name}: ${out.length} strings`);
}
