#!/usr/bin/env python3
"""Assembles tests/fixtures/tokenizers/qwen2/tokenizer.json from Qwen2's vocab.json and merges.txt.

Qwen2 (Apache-2.0) ships a byte-level BPE as vocab.json + merges.txt. This script wraps them in
the tokenizer.json layout that Qwen2's own tokenizer.json uses: Split with Qwen2's regex
(Isolated) then ByteLevel(add_prefix_space=false, use_regex=false); ByteLevel decoder and
post-processor; the added tokens <|endoftext|>, <|im_start|>, <|im_end|>. It differs from the
released file in two ways: no NFC normalizer (ressa does not implement NFC), and an extra special
added token <image> (id 151646, as llava-hf adds one) so that the tests cover it. Merges are
written in the ["a", "b"] pair form (phi-3's file uses the "a b" string form).

Usage: tokenizer_assemble_qwen2.py VOCAB_JSON MERGES_TXT OUT_DIR
"""
import json
import sys

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def added(id_, content):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True}


def main(vocab_path, merges_path, out_dir):
    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    merges = []
    with open(merges_path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#version"):
                continue
            a, b = line.split(" ")
            merges.append([a, b])
    n = len(vocab)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(n + i, s) for i, s in enumerate(specials)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated",
             "invert": False},
            byte_level]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                  "merges": merges},
    }
    with open(f"{out_dir}/tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
