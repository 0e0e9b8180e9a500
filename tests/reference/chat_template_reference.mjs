// Writes tests/fixtures/chat_templates/goldens.json: the chat templates beside it rendered with
// Hugging Face's JavaScript port of Jinja (@huggingface/jinja 0.5.13, which applies transformers'
// settings: trim_blocks, lstrip_blocks, one trailing newline dropped), over the conversations
// below. test_io_chat_template compares ressa's ChatTemplate::render against every case.
//
// Each case is {"name", "template" (a file name), "messages", "add_generation_prompt", "vars"
// (extra template variables such as bos_token), and either "output" (the rendered text) or
// "error" (the message of the template's raise_exception)}; or, for the SNIPPETS, {"name",
// "source" (the template text), "vars" (all its variables), "output"}.
//
// Messages are in the llava-hf form: content is a list of {"type": "image"} and
// {"type": "text", "text": ...} parts. The llava-hf templates read only that form, so string
// contents go to the templates that test for them (qwen2_vl, multimodal_doc, features, chatml).
//
// Run (node >= 18; the package lives outside the repository):
//   mkdir -p /tmp/jinjaref && cd /tmp/jinjaref && npm install @huggingface/jinja@0.5.13
//   JINJA_JS=/tmp/jinjaref/node_modules/@huggingface/jinja/dist/index.js \
//     node tests/reference/chat_template_reference.mjs tests/fixtures/chat_templates
import fs from "node:fs";
import path from "node:path";

const { Template } = await import(process.env.JINJA_JS ?? "@huggingface/jinja");
const dir = process.argv[2] ?? "tests/fixtures/chat_templates";

const img = { type: "image" };
const txt = (text) => ({ type: "text", text });
const user = (...content) => ({ role: "user", content });
const assistant = (...content) => ({ role: "assistant", content });
const system = (...content) => ({ role: "system", content });

// Conversations in the list-of-parts form.
const PARTS = {
  one_image: [user(img, txt("What is shown in this image?"))],
  text_only: [user(txt("Describe a red circle."))],
  multi_turn: [
    user(img, txt("What color is the circle?")),
    assistant(txt("It is red.")),
    user(txt("And the background?")),
  ],
  system_first: [
    system(txt("You are a careful visual assistant.")),
    user(img, txt("Count the shapes.")),
    assistant(txt("There are three shapes.")),
  ],
  interleaved: [
    user(txt("Compare"), img, txt("with"), img, txt("please.")),
    assistant(txt("The first is larger.")),
    user(img, txt("And this one?")),
  ],
  awkward_text: [
    user(img, txt("  Quotes ' \" and braces {{ }} {% %}\nnew line, tab\t, unicode: café ☕ 日本  ")),
    assistant(txt("  spaced answer  ")),
  ],
  ends_with_assistant: [user(img, txt("Describe this image.")), assistant(txt("There is a dog and"))],
};

// Conversations with string contents.
const STRINGS = {
  string_turns: [
    { role: "system", content: "You are helpful." },
    { role: "user", content: "  Hello there.  " },
    { role: "assistant", content: "Hi! How can I help?" },
    { role: "user", content: "Tell me a joke." },
  ],
  string_single: [{ role: "user", content: "What is 2+2?" }],
};

const MIXED = {
  mixed_string_system: [
    { role: "system", content: "Answer briefly." },
    user(img, txt("What is this?")),
    assistant(txt("A cat.")),
    user(img, img, txt("And these?")),
  ],
};

// Small templates on the semantics chat templates lean on: whitespace control, trim_blocks /
// lstrip_blocks, literals, operators, tests, loops, scoping, namespace(). Only constructs on
// which the JS port agrees with Python Jinja are here; test_io_chat_template checks the rest
// (integer floor division, string comparison, CRLF sources, ...) against Python Jinja's output.
const SNIPPETS = [
  ["concat", "{{ 'a' ~ 1 ~ 'b' }}|{{ 'a' ~ 2 * 3 }}|{{ 'x' + 'y' }}", {}],
  ["ws_lstrip_start", "   {% if true %}x{% endif %}  \n", {}],
  ["ws_comment_line", "a\n  {# c #}\nb", {}],
  ["ws_minus_newlines", "{%- if true %}\n\n x{% endif %}", {}],
  ["ws_var_minus", "a {{- ' b ' -}} c", {}],
  ["ws_for_lines", "x\n{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\n", {}],
  ["ws_inner_minus", "{% if true -%}   \n\n  x  {%- endif %}!", {}],
  ["ws_var_no_trim", "{{ 'a' }}\n{{ 'b' }}\n", {}],
  ["ws_block_after_var", "{{ 'a' }}  {% if true %}b{% endif %}\n  {% if true %}c{% endif %}", {}],
  ["ws_two_newlines", "{% if true %}\n\nx\n{% endif %}\n\ny", {}],
  ["ws_tabs", "\t{% if true %}\tx\n\t{% endif %}\ty", {}],
  ["ws_nbsp", "a\u00a0{%- if true -%}\u00a0b{% endif %}", {}],
  ["ws_unicode_space_trim", "{{ '\u2003 x \u3000' | trim }}|{{ ' y\t\n' | trim }}", {}],
  ["strings", "{{ 'it\\'s' }} {{ \"dq\" }} {{ \"\\u00e9\\x41\" }} {{ 'a' 'b' }} {{ '{%' }} {{ '}}' }} {{ 'tab\\there' }}", {}],
  ["literal_braces", "a { b } c {x y} {", {}],
  ["and_or", "{{ '' or 'b' }}|{{ 'a' and 'c' }}|{{ 0 or '' }}|{{ none or 'n' }}|{{ 'x' if 'y' else 'z' }}|{{ 'x' if '' }}", {}],
  ["in_ops", "{% if 'a' in 'cat' %}1{% endif %}{% if 2 in [1,2] %}2{% endif %}{% if 'k' in m %}3{% endif %}{% if 'q' not in m %}4{% endif %}{% if 3 not in [1,2] %}5{% endif %}", {"m": {"k": 1}}],
  ["undefined", "[{{ nope }}][{{ m.missing }}][{{ m['missing'] }}][{{ l[5] }}]", {"m": {"a": 1}, "l": [1]}],
  ["neg_index", "{{ l[-1] }}{{ l[-3] }}{{ l[0] }}", {"l": [1, 2, 3]}],
  ["loop_nested", "{% for a in [1,2] %}{% for b in [3,4,5] %}{{ loop.index }}{{ loop.revindex }}{{ loop.length }}{% if loop.last %};{% endif %}{% endfor %}{{ loop.index0 }}{{ loop.revindex0 }}|{% endfor %}", {}],
  ["namespace_nested", "{% set ns = namespace(a=1, b='s') %}{% for i in [1,2,3] %}{% for j in [1,2] %}{% set ns.a = ns.a * 2 %}{% endfor %}{% endfor %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }}{% set ns2 = ns %}{% set ns2.a = 0 %}{{ ns.a }}", {}],
  ["not_precedence", "{% if not 1 == 2 %}a{% endif %}{% if not nope is defined %}b{% endif %}{% if x is not none %}c{% endif %}{% if not (true and false) %}d{% endif %}", {"x": 1}],
  ["messages_access", "{{ messages[0]['content'][0]['text'] }}|{{ messages[0].content[1].type }}|{{ messages | length }}|{{ messages[-1].role }}", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}]}],
  ["generation_ws", "{%- for m in ms -%}\n  {%- generation -%}\n   {{ m }}  \n  {%- endgeneration -%}\n{%- endfor %}|{% generation %}\nx\n{% endgeneration %}|", {"ms": ["a", "b"]}],
  ["comment_dash", "a  {#- c -#}  b {# x #} c", {}],
  ["set_filter_chain", "{% set users = messages | selectattr('role', 'equalto', 'user') | list %}{{ users | length }}{{ users[-1].content }}", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}],
  ["trailing_newlines", "a\n\n", {}],
  ["unicode_upper", "{{ 'abc' | upper }}{{ '\u65e5\u672c' | length }}", {}],
];

const TOKENS = { bos_token: "<s>", eos_token: "</s>" };
const QWEN_TOKENS = { bos_token: null, eos_token: "<|im_end|>" };

// Erroring conversations: the template's raise_exception message is the golden.
const ERRORS = {
  llava_next_mistral: { tool_role: [user(txt("hi")), { role: "tool", content: [txt("42")] }] },
  features: {
    bad_role: [user(txt("hi")), { role: "critic", content: [txt("no")] }],
    repeated_role: [user(txt("a")), user(txt("b"))],
    bad_part: [user({ type: "video" }, txt("what happens?"))],
    no_messages: [],
  },
};

// template file -> [conversation sets, variables]
const PLAN = [
  ["llava_1_5.jinja", [PARTS], [TOKENS]],
  ["llava_onevision.jinja", [PARTS], [QWEN_TOKENS]],
  ["qwen2_vl.jinja", [PARTS, STRINGS, MIXED], [QWEN_TOKENS, { ...QWEN_TOKENS, add_vision_id: true }]],
  ["llava_next_mistral.jinja", [PARTS], [TOKENS]],
  ["multimodal_doc.jinja", [PARTS, STRINGS, MIXED], [{ bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" }]],
  ["features.jinja", [PARTS, STRINGS, MIXED], [TOKENS, {}]],
  ["chatml.jinja", [STRINGS], [{}]],
];

// The JS port prints some values differently from Python Jinja (booleans, none, lists, mappings)
// and lacks some filters (count); the templates and cases here avoid those.
const cases = [];
const seen = new Set();
// Python Jinja keeps an unknown string escape as written: llava-v1.6-mistral's '<\s> ' renders
// "<\s> ". The JS port refuses \s, so its copy of the template spells it '<\\s> ' (same text).
const for_js = (source) => source.replace(/(?<!\\)((?:\\\\)*)\\s/g, "$1\\\\s");

function add(name, file, source, messages, agp, vars) {
  if (seen.has(name)) throw new Error(`duplicate case ${name}`);
  seen.add(name);
  const c = { name, template: file, messages, add_generation_prompt: agp, vars };
  try {
    c.output = new Template(for_js(source)).render({ ...vars, messages, add_generation_prompt: agp });
  } catch (e) {
    c.error = String(e.message ?? e);
  }
  cases.push(c);
}

for (const [file, sets, varsList] of PLAN) {
  const source = fs.readFileSync(path.join(dir, file), "utf8");
  const stem = file.replace(/\.jinja$/, "");
  varsList.forEach((vars, vi) => {
    for (const set of sets) {
      for (const [conv, messages] of Object.entries(set)) {
        for (const agp of [true, false]) {
          add(`${stem}/${conv}/v${vi}/${agp ? "gen" : "nogen"}`, file, source, messages, agp, vars);
        }
      }
    }
  });
  for (const [conv, messages] of Object.entries(ERRORS[stem] ?? {})) {
    add(`${stem}/${conv}/error`, file, source, messages, true, varsList[0]);
  }
}

for (const [name, source, vars] of SNIPPETS) {
  const c = { name: `snippet/${name}`, source, vars };
  if (seen.has(c.name)) throw new Error(`duplicate case ${c.name}`);
  seen.add(c.name);
  c.output = new Template(source).render(vars);
  cases.push(c);
}

for (const c of cases) {
  const expect_error = c.name.endsWith("/error");
  if (expect_error !== ("error" in c)) throw new Error(`${c.name}: ${c.error ?? "rendered without error"}`);
}
fs.writeFileSync(path.join(dir, "goldens.json"), JSON.stringify({ cases }, null, 1) + "\n");
console.log(`wrote ${cases.length} cases to ${path.join(dir, "goldens.json")}`);
