// A small Jinja interpreter for Hugging Face chat templates: the subset that the chat templates
// of llava-hf checkpoints (and ressa's own) use, with the environment settings transformers
// renders them with (trim_blocks, lstrip_blocks, no autoescape, one trailing newline dropped).
// Torch-free; depends on the standard library and nlohmann::json only.
//
// Supported:
//   text, {{ expr }}, {# comment #}, whitespace control {%- -%} {{- -}} {#- -#}
//   {% if %}/{% elif %}/{% else %}/{% endif %}
//   {% for x in list %}...{% endfor %} with loop.index0/index/revindex/revindex0/first/last/length
//   {% set name = expr %}   (Jinja scoping: a set inside a for body lasts for that iteration only)
//   namespace(name=expr, ...) and {% set ns.name = expr %} (state that outlives a loop iteration)
//   {% generation %}...{% endgeneration %} (transformers' assistant-mask marker: renders its body)
//   literals: 'str' "str" (escapes \n \t \r \b \f \v \' \" \\ \xHH \uHHHH; any other \c stays as
//   written, as in Python Jinja), integers, true/false/none (and True/False/None), [lists]
//   a.b, a['b'], a[0] (negative indices count from the end), a if c else b
//   and or not, == != < > <= >=, in / not in, + - * // % (integers), + (strings), ~
//   (== and `in` follow Python: true == 1, false == 0)
//   tests: defined undefined none string integer number boolean mapping sequence iterable
//          equalto eq ne true false even odd   (x is [not] test, x is test arg, x is test(arg))
//   filters: trim length count upper lower selectattr rejectattr list (of a list or a string)
//   methods on strings: strip lstrip rstrip startswith endswith upper lower
//   raise_exception(message): render throws std::runtime_error with the template's message
// Anything else (macros, slices, dict literals, floats, tojson, keyword arguments other than
// namespace()'s, ...) is refused with a std::runtime_error naming the source, line and column;
// upper/lower refuse non-ASCII text rather than guess Unicode case rules. Whitespace control
// ({%- -%}) strips Unicode whitespace, as Python's does.
//
// Values printed as Python prints them: none -> "None", booleans -> "True"/"False", undefined ->
// "". Printing a list, a mapping or a float is refused.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace ressa::io::jinja {

// Bounds that keep any template, however written, from running away. Exceeding one throws
// std::runtime_error naming the limit.
struct Limits {
  size_t max_output_bytes = size_t(16) << 20;   // rendered text, and any one string value
  size_t max_loop_iterations = 1'000'000;       // for-loop bodies entered, over the whole render
  size_t max_work = size_t(1) << 30;            // expression nodes evaluated + string bytes built
  size_t max_value_nodes = 1'000'000;           // elements in one list built by the template
  int max_nesting = 100;                        // nested blocks and nested expressions
};

struct Program;

class Template {
 public:
  // Parses `source`; `where` names it in error messages (a file path, or a label).
  // Throws std::runtime_error "[ChatTemplate] <where>:<line>:<col>: ..." on a syntax error or a
  // construct outside the supported subset.
  static Template parse(const std::string& source, const std::string& where, const Limits& limits = {});

  // Renders with the top-level variables in `vars` (a JSON object). Throws std::runtime_error
  // on an evaluation error, a limit, or raise_exception().
  std::string render(const nlohmann::json& vars) const;

  const std::string& where() const;

 private:
  std::shared_ptr<const Program> program_;
};

}  // namespace ressa::io::jinja
