#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizers/corpus.jsonl: the strings whose BPE encodings are checked.

One JSON string per line (so strings may hold newlines). Hand-picked cases first (empty string,
contractions, code, special tokens inline, whitespace runs, emoji ZWJ sequences, scripts with
combining marks), then strings assembled at random, with a fixed seed, from fragments of many
scripts, digit runs, punctuation, whitespace and added tokens. Characters come from Unicode 14
assigned code points only, and U+0085 / U+FEFF are left out: the JavaScript reference treats them
as whitespace differently from the Rust library (JS \\s has U+FEFF, Oniguruma's has U+0085).

Usage: tokenizer_corpus.py OUT.jsonl [COUNT]
"""
import json
import random
import sys
import unicodedata

HAND = [
    "", " ", "  ", "\n", "\t", "a", "Hello world", "Hello, world!", " leading space",
    "trailing space ", "two  spaces", "tab\tseparated\tvalues", "line1\nline2\n\nline4",
    "windows\r\nline\r\nendings\r\n", "   \n   \n", "\n\n\n\n", " \t \n \t ", "a \n b",
    "I'm here, you're there, it's fine, we've won, they'll see, he'd go, don't.",
    "I'M HERE, YOU'RE THERE, IT'S FINE, WE'VE WON, THEY'LL SEE, HE'D GO, DON'T.",
    "'s 't 're 've 'm 'll 'd 'x", "rock'n'roll", "O'Neil's", "''quoted''",
    "1", "12", "123", "1234567890", "3.14159265358979", "1,000,000", "2024-01-31T12:34:56Z",
    "0x7fffffff", "1e-10", "v1.2.3", "+44 (0)20 7946 0958", "٠١٢٣٤٥٦٧٨٩", "１２３４５", "²³¹ ½ ¾",
    "Ⅻ ⅰⅱⅲ", "def f(x):\n    return x * 2\n", "int main() { return 0; }\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "if x != y and not z:\n        pass",
    "<div class=\"a\">text</div>", "SELECT * FROM t WHERE id = 42;", "a->b, c::d, e=>f, g<=h",
    "https://example.com/path?q=1&r=two#frag", "user@example.com", "#!/bin/bash\necho $HOME",
    "{\"key\": [1, 2, {\"nested\": null}]}", "~!@#$%^&*()_+`-=[]{}|;':\",./<>?",
    "<image>", "<image>\nWhat is shown in the image?", "USER: <image>\nDescribe it. ASSISTANT:",
    "a<image>b", " <image> ", "<image><image><image>", "<IMAGE>", "<imag", "<image",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
    "<|im_start|>assistant\n", "<|endoftext|>", "text<|endoftext|>more", "<|im_end|><|im_start|>",
    "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4<|end|>", "<|system|>  spaced  <|end|>",
    "<|user|>", "<|assistant|>   ", "<s>", "</s>", "<s> hello </s>", "<unk>", "<s><s></s>",
    "<|placeholder1|>x<|placeholder2|>", "<|endoftext|><|endoftext|>",
    "café naïve résumé façade coöperate", "Ångström Øresund Æsir ß straße", "e\u0301 a\u0300 n\u0303",
    "你好，世界！", "日本語のテキストです。カタカナ、ひらがな。", "한국어 텍스트입니다", "中文 English 混合",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "हिन्दी में लिखा गया वाक्य।", "สวัสดีชาวโลก",
    "Привет, мир!", "Γειά σου Κόσμε", "ქართული ენა", "Հայերեն", "ቋንቋ", "தமிழ் மொழி",
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵", "❤️", "🧑🏾‍💻 coding", "a😀b😀c",
    "∀x ∈ ℝ: x² ≥ 0", "→ ← ↑ ↓ ⇒", "€100 £50 ¥1000 ₹20", "©®™", "…—–‘’“”", "\u00a0non\u00a0breaking",
    "ideographic\u3000space", "em\u2003space", "zero\u200bwidth", "thin\u2009space\u202fnarrow",
    "\u2028line\u2029para", "ctrl\x07\x1b[0m", "𝐀𝐁𝐂 𝔸𝔹", "𠀀𠀁 𪚥", "ꙮ", "\u0301leading mark",
    "x" * 300, "ab" * 200, " " * 50, "\n" * 30, "😀" * 40, "9" * 64, "-" * 80, "Tokenization" * 20,
]

RANGES = [
    (0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xFF), (0x100, 0x17F), (0x391, 0x3C9), (0x410, 0x44F),
    (0x5D0, 0x5EA), (0x621, 0x64A), (0x660, 0x669), (0x905, 0x94D), (0x966, 0x96F),
    (0xE01, 0xE3A), (0x300, 0x36F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2500, 0x257F),
    (0x3041, 0x3096), (0x30A1, 0x30FA), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0xFF01, 0xFF5E),
    (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1D400, 0x1D4FF), (0x20000, 0x2A6D6),
    (0x2070, 0x209C), (0x2150, 0x218B), (0x20A0, 0x20C0),
]
WORDS = ("the of and to in is you that it he was for on are as with his they at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could people "
         "my than first water been call who oil its now find long down day did get come made may "
         "part image describe shape color circle square triangle red blue green left right above "
         "below question answer").split()
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u3000", "\t\t"]
PUNCT = list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`") + ["...", "--", "'s", "'ll", "'RE", "n't"]
ADDED = ["<image>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|user|>", "<|assistant|>",
         "<|end|>", "<s>", "</s>", "<unk>", "<|system|>"]


def assigned(cp):
    return unicodedata.category(chr(cp)) not in ("Cn", "Cs", "Co") and cp not in (0x85, 0xFEFF)


def random_char(rng):
    while True:
        lo, hi = rng.choice(RANGES)
        cp = rng.randint(lo, hi)
        if assigned(cp):
            return chr(cp)


def fragment(rng):
    k = rng.random()
    if k < 0.30:
        w = rng.choice(WORDS)
        r = rng.random()
        return w.capitalize() if r < 0.2 else w.upper() if r < 0.25 else w
    if k < 0.45:
        return "".join(random_char(rng) for _ in range(rng.randint(1, 6)))
    if k < 0.60:
        return rng.choice(SPACES)
    if k < 0.70:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
    if k < 0.82:
        return rng.choice(PUNCT)
    if k < 0.90:
        return rng.choice(ADDED)
    if k < 0.95:
        return rng.choice(["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "✨", "🤖", "❤️", "🧑‍🚀"])
    return rng.choice(["e\u0301", "\u200d", "\u200b", "\u00ad", "ﬁ", "Ⅸ", "½", "\x0b", "\x0c"])


def main(out, count):
    rng = random.Random(20240607)
    lines = list(HAND)
    while len(lines) < count:
        n = rng.randint(1, 24)
        parts = []
        for _ in range(n):
            parts.append(fragment(rng))
            if rng.random() < 0.55:
                parts.append(" ")
        lines.append("".join(parts))
    with open(out, "w", encoding="utf-8") as f:
        for s in lines:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 1200)
