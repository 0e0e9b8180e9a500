// Lexer, parser and evaluator for the Jinja subset of jinja.h. The lexer follows Python Jinja's
// rules for the settings transformers uses (trim_blocks, lstrip_blocks, newlines normalised to
// "\n", one trailing newline dropped); the evaluator follows Python Jinja's value semantics
// (undefined prints as "", `a or b` returns an operand, a set inside a for body is local to
// that iteration).
#include "ressa/io/jinja.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ressa/io/tokenizer_unicode.h"

namespace ressa::io::jinja {

using json = nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& where, int line, int col, const std::string& msg) {
  throw std::runtime_error("[ChatTemplate] " + where + ":" + std::to_string(line) + ":" + std::to_string(col) +
                           ": " + msg);
}

// ---- lexer ---------------------------------------------------------------------------------

enum class Tok { Text, BlockBegin, BlockEnd, VarBegin, VarEnd, Name, String, Integer, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Text, Name, String (decoded), Op
  int64_t ival = 0;  // Integer
  int line = 1, col = 1;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Python's str.isspace() code points.
bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Python's str.strip/lstrip/rstrip: default whitespace, or the (ASCII) characters in `chars`.
std::string py_strip(const std::string& s, bool left, bool right, const std::string* chars) {
  size_t b = 0, e = s.size();
  if (chars) {
    if (left)
      while (b < e && chars->find(s[b]) != std::string::npos) ++b;
    if (right)
      while (e > b && chars->find(s[e - 1]) != std::string::npos) --e;
    return s.substr(b, e - b);
  }
  if (left) {
    while (b < e) {
      size_t len;
      if (!is_py_space(unicode::decode_utf8(s, b, &len))) break;  // invalid bytes are not space
      b += len;
    }
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && e - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      size_t len;
      const uint32_t cp = unicode::decode_utf8(s, start, &len);
      if (len != e - start || !is_py_space(cp)) break;
      e = start;
    }
  }
  return s.substr(b, e - b);
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& where) : where_(where) {
    // Python Jinja splits the source on \r\n, \r and \n and joins with \n, dropping one final
    // empty line (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    const size_t n = src_.size();
    bool line_starting = true;
    while (pos_ < n) {
      size_t t = pos_;
      while (true) {
        t = src_.find('{', t);
        if (t == std::string::npos || (t + 1 < n && (src_[t + 1] == '{' || src_[t + 1] == '%' || src_[t + 1] == '#')))
          break;
        ++t;
      }
      if (t == std::string::npos) {
        push_text(pos_, src_.substr(pos_));
        break;
      }
      std::string text = src_.substr(pos_, t - pos_);
      const char kind = src_[t + 1];
      const bool strip_left = t + 2 < n && src_[t + 2] == '-';
      if (t + 2 < n && src_[t + 2] == '+') error(t, "the '+' whitespace modifier is not supported");
      if (strip_left) {
        text = py_strip(text, false, true, nullptr);  // Python's str.rstrip(): Unicode whitespace too
      } else if (kind != '{') {
        // lstrip_blocks: spaces and tabs between a line start and a block or comment tag.
        const size_t nl = text.rfind('\n');
        const size_t from = nl == std::string::npos ? 0 : nl + 1;
        if ((from > 0 || line_starting) && from < text.size() &&
            std::all_of(text.begin() + from, text.end(), [](char c) { return c == ' ' || c == '\t'; }))
          text.resize(from);
      }
      push_text(pos_, std::move(text));
      pos_ = t + 2 + (strip_left ? 1 : 0);
      if (kind == '#') {
        const size_t e = src_.find("#}", pos_);
        if (e == std::string::npos) error(t, "comment '{#' is never closed with '#}'");
        const bool strip_right = e > pos_ && src_[e - 1] == '-';
        pos_ = e + 2;
        line_starting = after_tag(strip_right, true);
        continue;
      }
      const bool block = kind == '%';
      push(block ? Tok::BlockBegin : Tok::VarBegin, t, block ? "{%" : "{{");
      bool strip_right = false;
      while (true) {
        while (pos_ < n && is_space(src_[pos_])) ++pos_;
        if (pos_ >= n) error(t, std::string("tag '") + (block ? "{%" : "{{") + "' is never closed with '" +
                                    (block ? "%}" : "}}") + "'");
        const char* close = block ? "%}" : "}}";
        if (src_[pos_] == '-' && src_.compare(pos_ + 1, 2, close) == 0) {
          strip_right = true;
          pos_ += 3;
          break;
        }
        if (src_.compare(pos_, 2, close) == 0) {
          pos_ += 2;
          break;
        }
        lex_token();
      }
      push(block ? Tok::BlockEnd : Tok::VarEnd, pos_ - 2, block ? "%}" : "}}");
      line_starting = after_tag(strip_right, block);
    }
    push(Tok::Eof, n, "end of template");
    return std::move(tokens_);
  }

 private:
  std::string src_;
  const std::string& where_;
  size_t pos_ = 0;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;

  void locate(size_t p, int& line, int& col) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), p);
    const size_t l = size_t(it - line_starts_.begin());  // 1-based line
    line = int(std::min<size_t>(l, size_t(std::numeric_limits<int>::max())));
    col = int(std::min<size_t>(p - line_starts_[l - 1] + 1, size_t(std::numeric_limits<int>::max())));
  }
  [[noreturn]] void error(size_t p, const std::string& msg) const {
    int line, col;
    locate(p, line, col);
    fail(where_, line, col, msg);
  }
  void push(Tok type, size_t p, std::string text, int64_t ival = 0) {
    Token tok{type, std::move(text), ival};
    locate(p, tok.line, tok.col);
    tokens_.push_back(std::move(tok));
  }
  void push_text(size_t p, std::string text) {
    if (!text.empty()) push(Tok::Text, p, std::move(text));
  }
  // After a closing tag: `-` strips all following whitespace; trim_blocks drops one newline
  // after a block or comment tag. Returns whether the next text starts a line.
  bool after_tag(bool strip_right, bool trim) {
    if (strip_right) {  // Python's \s*: Unicode whitespace too
      bool newline = false;
      size_t len;
      for (uint32_t cp; pos_ < src_.size() && is_py_space(cp = unicode::decode_utf8(src_, pos_, &len));) {
        newline = cp == '\n';
        pos_ += len;
      }
      return newline;
    }
    if (trim && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      return true;
    }
    return false;
  }

  void lex_token() {
    const size_t start = pos_;
    const char c = src_[pos_];
    if (is_name_start(c)) {
      while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
      push(Tok::Name, start, src_.substr(start, pos_ - start));
      return;
    }
    if (is_digit(c)) {
      int64_t v = 0;
      while (pos_ < src_.size() && is_digit(src_[pos_])) {
        const int d = src_[pos_] - '0';
        if (v > (std::numeric_limits<int64_t>::max() - d) / 10) error(start, "integer literal is too large");
        v = v * 10 + d;
        ++pos_;
      }
      if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1]))
        error(start, "float literals are not supported");
      if (pos_ < src_.size() && (is_name_start(src_[pos_])))
        error(start, "malformed number literal");
      push(Tok::Integer, start, src_.substr(start, pos_ - start), v);
      return;
    }
    if (c == '\'' || c == '"') {
      push(Tok::String, start, lex_string(c));
      return;
    }
    static const char* const two[] = {"==", "!=", "<=", ">=", "//", "**"};
    for (const char* op : two) {
      if (src_.compare(pos_, 2, op) == 0) {
        pos_ += 2;
        push(Tok::Op, start, op);
        return;
      }
    }
    if (std::strchr("()[]{},.:|~+-*/%<>=", c) != nullptr && c != '\0') {
      ++pos_;
      push(Tok::Op, start, std::string(1, c));
      return;
    }
    error(start, std::string("unexpected character '") + c + "' in a tag");
  }

  int hex_digit(size_t p) const {
    if (p >= src_.size()) return -1;
    const char h = src_[p];
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
  }

  // A quoted string with Python's escapes; an unknown escape such as \s stays as written.
  std::string lex_string(char quote) {
    const size_t start = pos_++;
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) error(start, "string literal is never closed");
      const char ch = src_[pos_];
      if (ch == quote) {
        ++pos_;
        return out;
      }
      if (ch != '\\') {
        out += ch;
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= src_.size()) error(start, "string literal is never closed");
      const char e = src_[pos_ + 1];
      const size_t esc = pos_;
      pos_ += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case 'x':
        case 'u': {
          const int len = e == 'x' ? 2 : 4;
          uint32_t cp = 0;
          for (int k = 0; k < len; ++k) {
            const int d = hex_digit(pos_ + k);
            if (d < 0) error(esc, std::string("malformed \\") + e + " escape in a string literal");
            cp = cp * 16 + uint32_t(d);
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) error(esc, "surrogate \\u escapes are not supported");
          pos_ += len;
          unicode::append_utf8(out, cp);
          break;
        }
        case 'a': case 'U': case 'N': case '\n':
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
          error(esc, std::string("the escape \\") + (e == '\n' ? std::string("<newline>") : std::string(1, e)) +
                         " is not supported in string literals");
        default:
          out += '\\';
          out += e;
      }
    }
  }
};

// ---- syntax tree ---------------------------------------------------------------------------

enum class EK { Literal, Name, Attr, Item, Call, Filter, Test, Not, Neg, Binary, And, Or, Cond, List };

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  EK kind;
  int line = 0, col = 0;
  int depth = 1;                          // height of this subtree
  std::string name;                       // Name, Attr, Call (unused), Filter, Test, Binary operator
  std::shared_ptr<const json> literal;    // Literal
  bool negate = false;                    // Test: `is not`
  std::vector<ExprP> kids;                // operands, in source order (see Parser)
  std::vector<std::string> kwnames;       // Call: per kid, the keyword of a `name=value` argument, or ""
};

enum class NK { Text, Output, If, For, Set, Block };

struct Node {
  Node(NK k, int l, int c, std::string t = {}) : kind(k), line(l), col(c), text(std::move(t)) {}
  NK kind;
  int line = 0, col = 0;
  std::string text;                        // Text: the text; For: loop variable; Set: target
  std::vector<ExprP> exprs;                // Output: value; If: one condition per branch; For: iterable; Set: value
  std::vector<std::vector<Node>> bodies;   // If: one per condition, then the else body; For, Block: the body
  std::string attr;                        // Set: the attribute of `set ns.attr = ...` (empty for a plain set)
};

}  // namespace

struct Program {
  std::string where;
  Limits limits;
  std::vector<Node> body;
};

namespace {

// ---- parser --------------------------------------------------------------------------------

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& where, const Limits& limits)
      : t_(tokens), where_(where), limits_(limits) {}

  std::vector<Node> parse_template() {
    std::string stop;
    auto body = parse_body({}, stop);
    return body;
  }

 private:
  const std::vector<Token>& t_;
  const std::string& where_;
  const Limits& limits_;
  size_t i_ = 0;
  int depth_ = 0;

  struct DepthGuard {
    Parser& p;
    DepthGuard(Parser& parser, const Token& tok) : p(parser) {
      if (++p.depth_ > p.limits_.max_nesting)
        p.error(tok, "nesting deeper than " + std::to_string(p.limits_.max_nesting) + " levels");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& advance() {
    const Token& tok = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return tok;
  }
  bool is_op(const char* s) const { return cur().type == Tok::Op && cur().text == s; }
  bool is_name(const char* s) const { return cur().type == Tok::Name && cur().text == s; }
  [[noreturn]] void error(const Token& tok, const std::string& msg) const { fail(where_, tok.line, tok.col, msg); }

  static std::string show(const Token& tok) {
    switch (tok.type) {
      case Tok::Eof: return "end of template";
      case Tok::BlockEnd: return "'%}'";
      case Tok::VarEnd: return "'}}'";
      case Tok::BlockBegin: return "'{%'";
      case Tok::VarBegin: return "'{{'";
      case Tok::Text: return "text";
      case Tok::String: return "a string";
      default: return "'" + tok.text + "'";
    }
  }
  void expect_op(const char* s) {
    if (!is_op(s)) error(cur(), std::string("expected '") + s + "', found " + show(cur()));
    advance();
  }
  void expect_block_end(const std::string& stmt) {
    if (cur().type != Tok::BlockEnd) error(cur(), "expected '%}' to end '{% " + stmt + " %}', found " + show(cur()));
    advance();
  }
  std::string expect_name(const std::string& what) {
    if (cur().type != Tok::Name) error(cur(), "expected " + what + ", found " + show(cur()));
    return advance().text;
  }

  ExprP make(EK kind, const Token& at, std::vector<ExprP> kids = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->col = at.col;
    for (const auto& k : kids)
      if (k) e->depth = std::max(e->depth, k->depth + 1);
    if (e->depth > limits_.max_nesting)
      error(at, "expression nested deeper than " + std::to_string(limits_.max_nesting) + " levels");
    e->kids = std::move(kids);
    return e;
  }
  static std::vector<ExprP> list(ExprP a, ExprP b = nullptr, ExprP c = nullptr) {
    std::vector<ExprP> v;
    v.push_back(std::move(a));
    if (b) v.push_back(std::move(b));
    if (c) v.push_back(std::move(c));
    return v;
  }

  // Nodes until a block tag named in `stops` (its name consumed; returned in `stop`), or the end.
  std::vector<Node> parse_body(const std::vector<std::string>& stops, std::string& stop) {
    std::vector<Node> body;
    stop.clear();
    while (true) {
      const Token& tok = cur();
      if (tok.type == Tok::Eof) return body;
      if (tok.type == Tok::Text) {
        Node n{NK::Text, tok.line, tok.col, tok.text};
        body.push_back(std::move(n));
        advance();
        continue;
      }
      if (tok.type == Tok::VarBegin) {
        advance();
        Node n{NK::Output, tok.line, tok.col};
        n.exprs.push_back(parse_expr());
        if (cur().type != Tok::VarEnd) error(cur(), "expected '}}', found " + show(cur()));
        advance();
        body.push_back(std::move(n));
        continue;
      }
      if (tok.type != Tok::BlockBegin) error(tok, "unexpected " + show(tok));
      advance();
      const Token& name_tok = cur();
      if (name_tok.type != Tok::Name) error(name_tok, "expected a statement name after '{%', found " + show(name_tok));
      const std::string name = name_tok.text;
      if (std::find(stops.begin(), stops.end(), name) != stops.end()) {
        advance();
        stop = name;
        return body;
      }
      if (name == "if") {
        body.push_back(parse_if());
      } else if (name == "for") {
        body.push_back(parse_for());
      } else if (name == "set") {
        body.push_back(parse_set());
      } else if (name == "generation") {
        DepthGuard guard(*this, name_tok);
        advance();
        expect_block_end("generation");
        Node n{NK::Block, name_tok.line, name_tok.col};
        std::string s;
        n.bodies.push_back(parse_body({"endgeneration"}, s));
        if (s.empty()) error(name_tok, "'{% generation %}' is never closed with '{% endgeneration %}'");
        expect_block_end("endgeneration");
        body.push_back(std::move(n));
      } else if (name == "elif" || name == "else" || name == "endif" || name == "endfor" ||
                 name == "endgeneration" || name == "endset") {
        error(name_tok, "unexpected '{% " + name + " %}'" +
                            (stops.empty() ? std::string() : " (expected '{% " + stops.back() + " %}')"));
      } else {
        static const char* const known[] = {"macro", "endmacro", "call", "endcall", "filter", "endfilter",
                                            "raw", "endraw", "include", "import", "from", "extends",
                                            "block", "endblock", "with", "endwith", "autoescape",
                                            "endautoescape", "break", "continue", "do", "trans", "endtrans"};
        for (const char* k : known)
          if (name == k) error(name_tok, "the statement '{% " + name + " %}' is not supported");
        error(name_tok, "unknown statement '{% " + name + " %}'");
      }
    }
  }

  Node parse_if() {
    const Token& if_tok = cur();
    DepthGuard guard(*this, if_tok);
    advance();
    Node n{NK::If, if_tok.line, if_tok.col};
    n.exprs.push_back(parse_expr());
    expect_block_end("if");
    while (true) {
      std::string stop;
      n.bodies.push_back(parse_body({"elif", "else", "endif"}, stop));
      if (stop.empty()) error(if_tok, "'{% if %}' is never closed with '{% endif %}'");
      if (stop == "elif") {
        n.exprs.push_back(parse_expr());
        expect_block_end("elif");
        continue;
      }
      if (stop == "else") {
        expect_block_end("else");
        n.bodies.push_back(parse_body({"endif"}, stop));
        if (stop.empty()) error(if_tok, "'{% if %}' is never closed with '{% endif %}'");
      }
      expect_block_end("endif");
      return n;
    }
  }

  Node parse_for() {
    const Token& for_tok = cur();
    DepthGuard guard(*this, for_tok);
    advance();
    Node n{NK::For, for_tok.line, for_tok.col};
    n.text = expect_name("a loop variable name");
    if (is_op(",")) error(cur(), "unpacking several loop variables ('for a, b in ...') is not supported");
    if (!is_name("in")) error(cur(), "expected 'in', found " + show(cur()));
    advance();
    n.exprs.push_back(parse_or());
    if (is_name("if")) error(cur(), "loop filters ('for x in xs if ...') are not supported");
    if (is_name("recursive")) error(cur(), "recursive loops are not supported");
    expect_block_end("for");
    std::string stop;
    n.bodies.push_back(parse_body({"endfor", "else"}, stop));
    if (stop.empty()) error(for_tok, "'{% for %}' is never closed with '{% endfor %}'");
    if (stop == "else") error(t_[i_ - 1], "'{% else %}' in a for loop is not supported");
    expect_block_end("endfor");
    return n;
  }

  Node parse_set() {
    const Token& set_tok = cur();
    advance();
    Node n{NK::Set, set_tok.line, set_tok.col};
    n.text = expect_name("a variable name");
    if (is_op(".")) {
      advance();
      n.attr = expect_name("an attribute name after '.'");
      if (is_op(".")) error(cur(), "assigning to a nested attribute ('set a.b.c = ...') is not supported");
    }
    if (is_op(",")) error(cur(), "assigning several variables ('set a, b = ...') is not supported");
    if (cur().type == Tok::BlockEnd) error(cur(), "block assignments ('{% set x %}...{% endset %}') are not supported");
    expect_op("=");
    n.exprs.push_back(parse_expr());
    expect_block_end("set");
    return n;
  }

  // ---- expressions (precedence from Python Jinja's parser) ----

  ExprP parse_expr() {
    const Token& at = cur();
    DepthGuard guard(*this, at);
    ExprP e = parse_or();
    if (is_name("if")) {
      const Token& if_tok = advance();
      ExprP cond = parse_or();
      ExprP other;
      if (is_name("else")) {
        advance();
        other = parse_expr();
      }
      e = make(EK::Cond, if_tok, list(std::move(e), std::move(cond), std::move(other)));
    }
    return e;
  }
  ExprP parse_or() {
    ExprP l = parse_and();
    while (is_name("or")) {
      const Token& op = advance();
      l = make(EK::Or, op, list(std::move(l), parse_and()));
    }
    return l;
  }
  ExprP parse_and() {
    ExprP l = parse_not();
    while (is_name("and")) {
      const Token& op = advance();
      l = make(EK::And, op, list(std::move(l), parse_not()));
    }
    return l;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      const Token& op = advance();
      DepthGuard guard(*this, op);
      return make(EK::Not, op, list(parse_not()));
    }
    return parse_compare();
  }
  bool at_compare() const {
    if (cur().type == Tok::Op) {
      const std::string& s = cur().text;
      return s == "==" || s == "!=" || s == "<" || s == ">" || s == "<=" || s == ">=";
    }
    return is_name("in") || (is_name("not") && peek().type == Tok::Name && peek().text == "in");
  }
  ExprP parse_compare() {
    ExprP l = parse_math1();
    if (!at_compare()) return l;
    const Token& op = cur();
    std::string name = op.text;
    if (is_name("not")) {
      advance();
      name = "not in";
    }
    advance();
    auto e = make(EK::Binary, op, list(std::move(l), parse_math1()));
    e->name = name;
    if (at_compare()) error(cur(), "chained comparisons ('a < b < c') are not supported");
    return e;
  }
  ExprP binary(const Token& op, ExprP l, ExprP r) {
    auto e = make(EK::Binary, op, list(std::move(l), std::move(r)));
    e->name = op.text;
    return e;
  }
  ExprP parse_math1() {
    ExprP l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = advance();
      l = binary(op, std::move(l), parse_concat());
    }
    return l;
  }
  ExprP parse_concat() {
    ExprP l = parse_math2();
    while (is_op("~")) {
      const Token& op = advance();
      l = binary(op, std::move(l), parse_math2());
    }
    return l;
  }
  ExprP parse_math2() {
    ExprP l = parse_pow();
    while (is_op("*") || is_op("//") || is_op("%") || is_op("/")) {
      if (is_op("/")) error(cur(), "'/' (float division) is not supported; use '//'");
      const Token& op = advance();
      l = binary(op, std::move(l), parse_pow());
    }
    return l;
  }
  ExprP parse_pow() {
    ExprP l = parse_unary(true);
    if (is_op("**")) error(cur(), "'**' is not supported");
    return l;
  }
  ExprP parse_unary(bool with_filter) {
    const Token& at = cur();
    DepthGuard guard(*this, at);
    ExprP node;
    if (is_op("-")) {
      advance();
      node = make(EK::Neg, at, list(parse_unary(false)));
    } else if (is_op("+")) {
      advance();
      node = parse_unary(false);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }
  ExprP parse_primary() {
    const Token& tok = cur();
    switch (tok.type) {
      case Tok::Name: {
        advance();
        auto lit = [&](json v) {
          auto e = make(EK::Literal, tok);
          e->literal = std::make_shared<const json>(std::move(v));
          return e;
        };
        if (tok.text == "true" || tok.text == "True") return lit(true);
        if (tok.text == "false" || tok.text == "False") return lit(false);
        if (tok.text == "none" || tok.text == "None") return lit(nullptr);
        auto e = make(EK::Name, tok);
        e->name = tok.text;
        return e;
      }
      case Tok::String: {
        std::string s = advance().text;
        while (cur().type == Tok::String) s += advance().text;  // 'a' 'b' is 'ab', as in Jinja
        auto e = make(EK::Literal, tok);
        e->literal = std::make_shared<const json>(std::move(s));
        return e;
      }
      case Tok::Integer: {
        advance();
        auto e = make(EK::Literal, tok);
        e->literal = std::make_shared<const json>(tok.ival);
        return e;
      }
      case Tok::Op:
        if (tok.text == "(") {
          advance();
          ExprP e = parse_expr();
          if (is_op(",")) error(cur(), "tuples are not supported");
          expect_op(")");
          return e;
        }
        if (tok.text == "[") {
          advance();
          std::vector<ExprP> items;
          while (!is_op("]")) {
            items.push_back(parse_expr());
            if (!is_op(",")) break;
            advance();
          }
          expect_op("]");
          return make(EK::List, tok, std::move(items));
        }
        if (tok.text == "{") error(tok, "dict literals are not supported");
        break;
      default:
        break;
    }
    error(tok, "unexpected " + show(tok) + " in an expression");
  }
  // Arguments up to ')'. Keyword arguments (`name=value`) are accepted where `keywords` is given
  // (function calls; their names go there, "" for a positional one) and refused elsewhere.
  std::vector<ExprP> parse_call_args(std::vector<std::string>* keywords = nullptr) {
    expect_op("(");
    std::vector<ExprP> args;
    bool seen_keyword = false;
    while (!is_op(")")) {
      std::string keyword;
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        if (!keywords) error(cur(), "keyword arguments are not supported here");
        keyword = advance().text;
        advance();
        seen_keyword = true;
      } else if (seen_keyword) {
        error(cur(), "a positional argument after a keyword argument");
      }
      args.push_back(parse_expr());
      if (keywords) keywords->push_back(keyword);
      if (!is_op(",")) break;
      advance();
    }
    expect_op(")");
    return args;
  }
  // A call `callee(...)`, located at the callee (so errors point at the function's name).
  ExprP make_call(const Token& tok, ExprP callee) {
    const int line = callee->line, col = callee->col;
    std::vector<ExprP> kids = list(std::move(callee));
    std::vector<std::string> keywords{""};
    for (auto& a : parse_call_args(&keywords)) kids.push_back(std::move(a));
    ExprP node = make(EK::Call, tok, std::move(kids));
    node->kwnames = std::move(keywords);
    node->line = line;
    node->col = col;
    return node;
  }
  ExprP parse_postfix(ExprP node) {
    while (true) {
      const Token& tok = cur();
      if (is_op(".")) {
        advance();
        if (cur().type != Tok::Name) error(cur(), "expected an attribute name after '.', found " + show(cur()));
        auto e = make(EK::Attr, tok, list(std::move(node)));
        e->name = advance().text;
        node = std::move(e);
      } else if (is_op("[")) {
        advance();
        if (is_op(":")) error(cur(), "slices ('a[1:]') are not supported");
        ExprP key = parse_expr();
        if (is_op(":")) error(cur(), "slices ('a[1:]') are not supported");
        expect_op("]");
        node = make(EK::Item, tok, list(std::move(node), std::move(key)));
      } else if (is_op("(")) {
        node = make_call(tok, std::move(node));
      } else {
        return node;
      }
    }
  }
  ExprP parse_filter_expr(ExprP node) {
    while (true) {
      const Token& tok = cur();
      if (is_op("|")) {
        advance();
        const std::string name = expect_name("a filter name after '|'");
        std::vector<ExprP> kids = list(std::move(node));
        if (is_op("("))
          for (auto& a : parse_call_args()) kids.push_back(std::move(a));
        node = make(EK::Filter, tok, std::move(kids));
        node->name = name;
      } else if (is_name("is")) {
        advance();
        bool negate = false;
        if (is_name("not")) {
          advance();
          negate = true;
        }
        const std::string name = expect_name("a test name after 'is'");
        std::vector<ExprP> kids = list(std::move(node));
        if (is_op("(")) {
          for (auto& a : parse_call_args()) kids.push_back(std::move(a));
        } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Integer ||
                    is_op("(") || is_op("[")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          kids.push_back(parse_postfix(parse_primary()));
        }
        node = make(EK::Test, tok, std::move(kids));
        node->name = name;
        node->negate = negate;
      } else if (is_op("(")) {
        node = make_call(tok, std::move(node));
      } else {
        return node;
      }
    }
  }
};

// ---- values --------------------------------------------------------------------------------

// A value shares the JSON it points into (aliasing shared_ptr), so reading messages[0]['content']
// copies nothing. A null pointer is Jinja's undefined.
// A namespace() object is the one mutable value: `ns` holds its attributes (each an immutable
// Value, so a value read from it never changes under the reader), and `j` a placeholder (a JSON
// binary, which no filter, test or operator takes for a string, list or mapping).
struct Value;
using Namespace = std::unordered_map<std::string, Value>;
struct Value {
  Value() = default;
  explicit Value(std::shared_ptr<const json> p) : j(std::move(p)) {}
  std::shared_ptr<const json> j;
  bool is_loop = false;  // the `loop` object: unknown attributes are refused, not undefined
  std::shared_ptr<Namespace> ns;
  bool defined() const { return j != nullptr; }
};

Value own(json v) { return Value{std::make_shared<const json>(std::move(v))}; }
Value child(const Value& parent, const json& c) { return Value{std::shared_ptr<const json>(parent.j, &c)}; }

std::string type_name(const Value& v) {
  if (!v.defined()) return "undefined";
  if (v.ns) return "namespace";
  switch (v.j->type()) {
    case json::value_t::null: return "none";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "float";
    case json::value_t::string: return "string";
    case json::value_t::array: return "list";
    case json::value_t::object: return "mapping";
    default: return "binary";
  }
}

bool is_int(const Value& v) { return v.defined() && v.j->is_number_integer(); }
bool is_str(const Value& v) { return v.defined() && v.j->is_string(); }

bool truthy(const Value& v) {
  if (!v.defined()) return false;
  if (v.ns) return true;
  const json& j = *v.j;
  switch (j.type()) {
    case json::value_t::null: return false;
    case json::value_t::boolean: return j.get<bool>();
    case json::value_t::number_integer: return j.get<int64_t>() != 0;
    case json::value_t::number_unsigned: return j.get<uint64_t>() != 0;
    case json::value_t::number_float: return j.get<double>() != 0.0;
    case json::value_t::string: return !j.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return !j.empty();
    default: return true;
  }
}

bool equal(const Value& a, const Value& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  if (a.ns || b.ns) return a.ns == b.ns;
  // Python's True == 1 and False == 0 (bool is an int there); JSON keeps them apart.
  const json& x = *a.j;
  const json& y = *b.j;
  if (x.is_boolean() != y.is_boolean() && (x.is_number_integer() || y.is_number_integer()) &&
      (x.is_boolean() || y.is_boolean())) {
    const json& n = x.is_boolean() ? y : x;
    const bool flag = (x.is_boolean() ? x : y).get<bool>();
    return n.is_number_unsigned() ? n.get<uint64_t>() == uint64_t(flag) : n.get<int64_t>() == int64_t(flag);
  }
  return x == y;
}

size_t codepoints(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Nodes plus string bytes in `j`, counting stops once past `cap`.
size_t weight(const json& j, size_t cap) {
  size_t w = 0;
  std::vector<const json*> stack{&j};
  while (!stack.empty() && w <= cap) {
    const json* x = stack.back();
    stack.pop_back();
    ++w;
    if (x->is_string()) w += x->get_ref<const std::string&>().size();
    if (x->is_array() || x->is_object())
      for (const auto& c : *x) stack.push_back(&c);
  }
  return w;
}

// ---- evaluator -----------------------------------------------------------------------------

class Renderer {
 public:
  explicit Renderer(const Program& p) : p_(p), lim_(p.limits) {}

  std::string run(const json& vars) {
    if (!vars.is_object()) fail(p_.where, 1, 1, "render variables must be a JSON object");
    const Value root = own(vars);
    scopes_.emplace_back();
    for (auto it = root.j->begin(); it != root.j->end(); ++it) scopes_.back()[it.key()] = child(root, it.value());
    render(p_.body);
    return std::move(out_);
  }

 private:
  const Program& p_;
  const Limits& lim_;
  std::string out_;
  size_t iterations_ = 0, work_ = 0;
  std::vector<std::unordered_map<std::string, Value>> scopes_;

  [[noreturn]] void error(const Expr& e, const std::string& msg) const { fail(p_.where, e.line, e.col, msg); }
  [[noreturn]] void error(const Node& n, const std::string& msg) const { fail(p_.where, n.line, n.col, msg); }

  void charge(size_t n, const Expr& at) {
    work_ += n;
    if (work_ > lim_.max_work) error(at, "rendering needs more than " + std::to_string(lim_.max_work) + " steps (limit)");
  }
  Value make_string(std::string s, const Expr& at) {
    if (s.size() > lim_.max_output_bytes)
      error(at, "a string longer than " + std::to_string(lim_.max_output_bytes) + " bytes (limit)");
    charge(s.size(), at);
    return own(std::move(s));
  }
  void emit(const std::string& s, int line, int col) {
    if (out_.size() + s.size() > lim_.max_output_bytes)
      fail(p_.where, line, col, "rendered text longer than " + std::to_string(lim_.max_output_bytes) + " bytes (limit)");
    out_ += s;
  }

  // Short source-like text for an expression, used in messages.
  static std::string describe(const Expr& e) {
    switch (e.kind) {
      case EK::Name: return e.name;
      case EK::Attr: return describe(*e.kids[0]) + "." + e.name;
      case EK::Item:
        return describe(*e.kids[0]) + "[" +
               (e.kids[1]->kind == EK::Literal ? e.kids[1]->literal->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) : std::string("...")) + "]";
      case EK::Literal: return e.literal->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // invalid UTF-8 shown as U+FFFD
      default: return "the expression";
    }
  }

  std::string to_text(const Value& v, const Expr& at) const {
    if (!v.defined()) return "";
    const json& j = *v.j;
    switch (j.type()) {
      case json::value_t::string: return j.get<std::string>();
      case json::value_t::number_integer: return std::to_string(j.get<int64_t>());
      case json::value_t::number_unsigned: return std::to_string(j.get<uint64_t>());
      case json::value_t::boolean: return j.get<bool>() ? "True" : "False";
      case json::value_t::null: return "None";
      default: error(at, "printing a " + type_name(v) + " (" + describe(at) + ") is not supported");
    }
  }

  int64_t as_int(const Value& v, const Expr& at, const char* what) const {
    if (!is_int(v)) error(at, std::string(what) + " needs integers, got " + type_name(v));
    if (v.j->is_number_unsigned() && v.j->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      error(at, "integer out of range");
    return v.j->get<int64_t>();
  }
  const std::string& as_str(const Value& v, const Expr& at, const std::string& what) const {
    if (!is_str(v)) error(at, what + " needs a string, got " + type_name(v));
    return v.j->get_ref<const std::string&>();
  }

  Value lookup(const std::string& name) const {
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s) {
      const auto it = s->find(name);
      if (it != s->end()) return it->second;
    }
    return Value{};
  }

  void render(const std::vector<Node>& body) {
    for (const Node& n : body) {
      switch (n.kind) {
        case NK::Text:
          emit(n.text, n.line, n.col);
          break;
        case NK::Output: {
          const Expr& e = *n.exprs[0];
          emit(to_text(eval(e), e), n.line, n.col);
          break;
        }
        case NK::If: {
          size_t branch = 0;
          while (branch < n.exprs.size() && !truthy(eval(*n.exprs[branch]))) ++branch;
          if (branch < n.bodies.size()) render(n.bodies[branch]);
          break;
        }
        case NK::For: {
          const Expr& it_expr = *n.exprs[0];
          const Value seq = eval(it_expr);
          if (!seq.defined() || !seq.j->is_array())
            error(it_expr, "'for' needs a list, but " + describe(it_expr) + " is " + type_name(seq));
          const size_t len = seq.j->size();
          for (size_t i = 0; i < len; ++i) {
            if (++iterations_ > lim_.max_loop_iterations)
              error(n, "more than " + std::to_string(lim_.max_loop_iterations) + " loop iterations (limit)");
            Value loop = own(json{{"index0", i},
                                  {"index", i + 1},
                                  {"revindex", len - i},
                                  {"revindex0", len - i - 1},
                                  {"first", i == 0},
                                  {"last", i + 1 == len},
                                  {"length", len}});
            loop.is_loop = true;
            scopes_.emplace_back();
            scopes_.back()[n.text] = child(seq, (*seq.j)[i]);
            scopes_.back()["loop"] = std::move(loop);
            render(n.bodies[0]);
            scopes_.pop_back();
          }
          break;
        }
        case NK::Set:
          if (n.attr.empty()) {
            scopes_.back()[n.text] = eval(*n.exprs[0]);
          } else {
            const Value target = lookup(n.text);
            if (!target.ns)
              error(n, "'set " + n.text + "." + n.attr + "' needs '" + n.text + "' to be a namespace(), but it is " +
                           type_name(target));
            Value v = eval(*n.exprs[0]);
            if (v.defined()) {
              (*target.ns)[n.attr] = std::move(v);
            } else {
              target.ns->erase(n.attr);
            }
          }
          break;
        case NK::Block:
          render(n.bodies[0]);
          break;
      }
    }
  }

  Value eval(const Expr& e) {
    charge(1, e);
    switch (e.kind) {
      case EK::Literal: return Value{e.literal};
      case EK::Name: return lookup(e.name);
      case EK::Attr: {
        const Value obj = eval(*e.kids[0]);
        if (!obj.defined())
          error(e, "'" + describe(*e.kids[0]) + "' is undefined, so '." + e.name + "' cannot be read");
        if (obj.ns) {
          const auto it = obj.ns->find(e.name);
          return it == obj.ns->end() ? Value{} : it->second;
        }
        if (obj.j->is_object()) {
          const auto it = obj.j->find(e.name);
          if (it != obj.j->end()) return child(obj, *it);
          if (obj.is_loop) error(e, "'loop." + e.name + "' is not supported");
        }
        return Value{};
      }
      case EK::Item: {
        const Value obj = eval(*e.kids[0]);
        const Value key = eval(*e.kids[1]);
        if (!obj.defined()) error(e, "'" + describe(*e.kids[0]) + "' is undefined, so it cannot be indexed");
        if (obj.ns) {
          if (!is_str(key)) return Value{};
          const auto it = obj.ns->find(key.j->get_ref<const std::string&>());
          return it == obj.ns->end() ? Value{} : it->second;
        }
        if (obj.j->is_object()) {
          if (!is_str(key)) return Value{};
          const auto it = obj.j->find(key.j->get_ref<const std::string&>());
          if (it != obj.j->end()) return child(obj, *it);
          if (obj.is_loop) error(e, "'loop[" + key.j->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "]' is not supported");
          return Value{};
        }
        if (obj.j->is_array()) {
          if (!is_int(key)) return Value{};
          const auto n = static_cast<int64_t>(obj.j->size());
          int64_t i = key.j->is_number_unsigned() && key.j->get<uint64_t>() > uint64_t(n) ? n : key.j->get<int64_t>();
          if (i < 0) i += n;
          if (i < 0 || i >= n) return Value{};
          return child(obj, (*obj.j)[size_t(i)]);
        }
        if (obj.j->is_string()) error(e, "indexing a string is not supported");
        return Value{};
      }
      case EK::Call: return call(e);
      case EK::Filter: return filter(e);
      case EK::Test: {
        const bool r = test(e.name, eval(*e.kids[0]), e, 1);
        return own(e.negate ? !r : r);
      }
      case EK::Not: return own(!truthy(eval(*e.kids[0])));
      case EK::Neg: {
        const int64_t v = as_int(eval(*e.kids[0]), e, "unary '-'");
        if (v == std::numeric_limits<int64_t>::min()) error(e, "integer overflow");
        return own(-v);
      }
      case EK::And: {
        Value l = eval(*e.kids[0]);
        return truthy(l) ? eval(*e.kids[1]) : l;
      }
      case EK::Or: {
        Value l = eval(*e.kids[0]);
        return truthy(l) ? l : eval(*e.kids[1]);
      }
      case EK::Cond:
        if (truthy(eval(*e.kids[1]))) return eval(*e.kids[0]);
        return e.kids.size() > 2 ? eval(*e.kids[2]) : Value{};
      case EK::List: {
        json arr = json::array();
        size_t w = 1;
        for (const auto& k : e.kids) {
          const Value v = eval(*k);
          if (!v.defined()) error(*k, "'" + describe(*k) + "' is undefined and cannot go into a list");
          if (v.ns) error(*k, "a namespace() cannot go into a list");
          w += weight(*v.j, lim_.max_value_nodes);
          if (w > lim_.max_value_nodes)
            error(e, "a list larger than " + std::to_string(lim_.max_value_nodes) + " elements and bytes (limit)");
          arr.push_back(*v.j);
        }
        charge(w, e);
        return own(std::move(arr));
      }
      case EK::Binary: return binary(e);
    }
    error(e, "internal error: unknown expression");
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    const Value l = eval(*e.kids[0]);
    const Value r = eval(*e.kids[1]);
    if (op == "==") return own(equal(l, r));
    if (op == "!=") return own(!equal(l, r));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (is_int(l) && is_int(r)) {
        const json& a = *l.j;
        const json& b = *r.j;
        c = a < b ? -1 : (b < a ? 1 : 0);
      } else if (is_str(l) && is_str(r)) {
        c = l.j->get_ref<const std::string&>().compare(r.j->get_ref<const std::string&>());
      } else {
        error(e, "cannot compare " + type_name(l) + " with " + type_name(r) + " using '" + op + "'");
      }
      const bool res = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
      return own(res);
    }
    if (op == "in" || op == "not in") {
      bool found = false;
      if (is_str(r)) {
        found = r.j->get_ref<const std::string&>().find(as_str(l, e, "'in' on a string")) != std::string::npos;
      } else if (r.defined() && r.j->is_array()) {
        for (const auto& x : *r.j) found = found || (l.defined() && equal(l, child(r, x)));
      } else if (r.defined() && r.j->is_object()) {
        found = is_str(l) && r.j->contains(l.j->get_ref<const std::string&>());
      } else {
        error(e, "'in' needs a string, list or mapping on its right, got " + type_name(r));
      }
      return own(op == "in" ? found : !found);
    }
    if (op == "~") return make_string(to_text(l, *e.kids[0]) + to_text(r, *e.kids[1]), e);
    if (op == "+" && is_str(l) && is_str(r))
      return make_string(l.j->get_ref<const std::string&>() + r.j->get_ref<const std::string&>(), e);
    if (!is_int(l) || !is_int(r))
      error(e, "cannot apply '" + op + "' to " + type_name(l) + " and " + type_name(r));
    const int64_t a = as_int(l, e, op.c_str()), b = as_int(r, e, op.c_str());
    int64_t res = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(a, b, &res);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(a, b, &res);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(a, b, &res);
    } else {  // "//" and "%" with Python's flooring
      if (b == 0) error(e, "integer division or modulo by zero");
      if (a == std::numeric_limits<int64_t>::min() && b == -1) error(e, "integer overflow");
      int64_t q = a / b, m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) {
        --q;
        m += b;
      }
      res = op == "//" ? q : m;
    }
    if (overflow) error(e, "integer overflow");
    return own(res);
  }

  std::vector<Value> eval_args(const Expr& e, size_t from) {
    std::vector<Value> args;
    for (size_t k = from; k < e.kids.size(); ++k) args.push_back(eval(*e.kids[k]));
    return args;
  }
  void arity(const Expr& e, const std::string& what, size_t got, size_t lo, size_t hi) const {
    if (got < lo || got > hi)
      error(e, what + " takes " + (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
                   " argument(s), got " + std::to_string(got));
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.kids[0];
    if (callee.kind == EK::Name && callee.name == "namespace" && !lookup(callee.name).defined()) {
      Value v = own(json::binary({}));
      v.ns = std::make_shared<Namespace>();
      for (size_t k = 1; k < e.kids.size(); ++k) {
        if (e.kwnames[k].empty()) error(*e.kids[k], "namespace() takes keyword arguments only (name=value)");
        Value a = eval(*e.kids[k]);
        if (a.defined()) (*v.ns)[e.kwnames[k]] = std::move(a);
      }
      return v;
    }
    for (size_t k = 1; k < e.kwnames.size(); ++k)
      if (!e.kwnames[k].empty()) error(*e.kids[k], "keyword arguments are supported in namespace() only");
    if (callee.kind == EK::Name) {
      if (callee.name == "raise_exception") {
        const auto args = eval_args(e, 1);
        arity(e, "raise_exception()", args.size(), 1, 1);
        error(e, "raise_exception: " + to_text(args[0], *e.kids[1]));
      }
      if (lookup(callee.name).defined()) error(e, "'" + callee.name + "' is not a function");
      static const char* const known[] = {"range", "dict", "cycler", "joiner", "lipsum", "strftime_now"};
      for (const char* k : known)
        if (callee.name == k) error(e, "the function '" + callee.name + "()' is not supported");
      error(e, "unknown function '" + callee.name + "()'");
    }
    if (callee.kind != EK::Attr) error(e, "only functions and string methods can be called");
    const Value obj = eval(*callee.kids[0]);
    const std::string& m = callee.name;
    const auto args = eval_args(e, 1);
    if (!obj.defined()) error(e, "'" + describe(*callee.kids[0]) + "' is undefined, so '." + m + "()' cannot be called");
    if (!obj.j->is_string()) error(e, "the method '." + m + "()' of a " + type_name(obj) + " is not supported");
    const std::string& s = obj.j->get_ref<const std::string&>();
    if (m == "strip" || m == "lstrip" || m == "rstrip") {
      arity(e, "." + m + "()", args.size(), 0, 1);
      return make_string(strip_with(s, m != "rstrip", m != "lstrip", args.empty() ? Value{} : args[0], e), e);
    }
    if (m == "startswith" || m == "endswith") {
      arity(e, "." + m + "()", args.size(), 1, 1);
      const std::string& x = as_str(args[0], e, "." + m + "()");
      const bool r = x.size() <= s.size() && (m == "startswith" ? s.compare(0, x.size(), x) == 0
                                                                : s.compare(s.size() - x.size(), x.size(), x) == 0);
      return own(r);
    }
    if (m == "upper" || m == "lower") {
      arity(e, "." + m + "()", args.size(), 0, 0);
      return make_string(change_case(s, m == "upper", e), e);
    }
    error(e, "the string method '." + m + "()' is not supported");
  }

  std::string strip_with(const std::string& s, bool left, bool right, const Value& chars, const Expr& e) const {
    if (!chars.defined() || chars.j->is_null()) return py_strip(s, left, right, nullptr);
    const std::string& c = as_str(chars, e, "strip");
    if (std::any_of(c.begin(), c.end(), [](char x) { return static_cast<unsigned char>(x) >= 0x80; }))
      error(e, "stripping non-ASCII characters is not supported");
    return py_strip(s, left, right, &c);
  }

  std::string change_case(std::string s, bool upper, const Expr& e) const {
    for (char& c : s) {
      if (static_cast<unsigned char>(c) >= 0x80)
        error(e, std::string(upper ? "upper" : "lower") + " of non-ASCII text is not supported");
      if (upper && c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
      if (!upper && c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    }
    return s;
  }

  Value filter(const Expr& e) {
    const std::string& f = e.name;
    const Value v = eval(*e.kids[0]);
    const auto args = eval_args(e, 1);
    const std::string what = "the filter '" + f + "'";
    if (f == "trim") {
      arity(e, what, args.size(), 0, 1);
      return make_string(strip_with(as_str(v, e, what), true, true, args.empty() ? Value{} : args[0], e), e);
    }
    if (f == "length" || f == "count") {
      arity(e, what, args.size(), 0, 0);
      if (is_str(v)) return own(codepoints(v.j->get_ref<const std::string&>()));
      if (v.defined() && (v.j->is_array() || v.j->is_object())) return own(v.j->size());
      error(e, what + " needs a string, list or mapping, got " + type_name(v));
    }
    if (f == "upper" || f == "lower") {
      arity(e, what, args.size(), 0, 0);
      return make_string(change_case(as_str(v, e, what), f == "upper", e), e);
    }
    if (f == "list") {
      arity(e, what, args.size(), 0, 0);
      if (v.defined() && v.j->is_array()) return v;
      json out = json::array();
      if (is_str(v)) {  // its characters (code points)
        const std::string& s = v.j->get_ref<const std::string&>();
        for (size_t i = 0; i < s.size();) {
          size_t len = 1;
          while (i + len < s.size() && (static_cast<unsigned char>(s[i + len]) & 0xC0) == 0x80) ++len;
          out.push_back(s.substr(i, len));
          i += len;
        }
      } else if (v.defined() && v.j->is_object()) {
        error(e, what + " of a mapping is not supported (its key order is not kept)");
      } else {
        error(e, what + " needs a string, list or mapping, got " + type_name(v));
      }
      const size_t w = weight(out, lim_.max_value_nodes);
      if (w > lim_.max_value_nodes)
        error(e, "a list larger than " + std::to_string(lim_.max_value_nodes) + " elements and bytes (limit)");
      charge(w, e);
      return own(std::move(out));
    }
    if (f == "selectattr" || f == "rejectattr") {
      if (args.empty()) arity(e, what, 0, 1, 1);
      if (!v.defined() || !v.j->is_array()) error(e, what + " needs a list, got " + type_name(v));
      const std::string& attr = as_str(args[0], e, what);
      if (attr.find('.') != std::string::npos) error(e, what + " with a dotted attribute is not supported");
      std::string test_name;
      if (args.size() > 1) test_name = as_str(args[1], e, what + " (test name)");
      const bool select = f == "selectattr";
      json out = json::array();
      size_t w = 1;
      for (const auto& item : *v.j) {
        if (!item.is_object()) error(e, what + " needs a list of mappings, found a " + type_name(own(item)) + " in it");
        const auto it = item.find(attr);
        const Value a = it == item.end() ? Value{} : child(v, *it);
        bool r;
        if (test_name.empty()) {
          r = truthy(a);
        } else {
          std::vector<Value> targs(args.begin() + 2, args.end());
          r = test_with(test_name, a, targs, e);
        }
        if (r == select) {
          w += weight(item, lim_.max_value_nodes);
          if (w > lim_.max_value_nodes)
            error(e, "a list larger than " + std::to_string(lim_.max_value_nodes) + " elements and bytes (limit)");
          out.push_back(item);
        }
      }
      charge(w, e);
      return own(std::move(out));
    }
    error(e, "the filter '" + f + "' is not supported");
  }

  bool test(const std::string& name, const Value& v, const Expr& e, size_t first_arg) {
    return test_with(name, v, eval_args(e, first_arg + 0), e);
  }

  bool test_with(const std::string& name, const Value& v, const std::vector<Value>& args, const Expr& e) const {
    const std::string what = "the test '" + name + "'";
    const bool d = v.defined();
    auto no_args = [&] { arity(e, what, args.size(), 0, 0); };
    if (name == "defined") return no_args(), d;
    if (name == "undefined") return no_args(), !d;
    if (name == "none") return no_args(), d && v.j->is_null();
    if (name == "string") return no_args(), is_str(v);
    if (name == "integer") return no_args(), is_int(v);
    if (name == "number") return no_args(), d && (v.j->is_number() || v.j->is_boolean());
    if (name == "boolean") return no_args(), d && v.j->is_boolean();
    if (name == "mapping") return no_args(), d && v.j->is_object();
    if (name == "sequence" || name == "iterable")
      return no_args(), d && (v.j->is_string() || v.j->is_array() || v.j->is_object());
    if (name == "true") return no_args(), d && v.j->is_boolean() && v.j->get<bool>();
    if (name == "false") return no_args(), d && v.j->is_boolean() && !v.j->get<bool>();
    if (name == "equalto" || name == "eq" || name == "ne") {
      arity(e, what, args.size(), 1, 1);
      return equal(v, args[0]) == (name != "ne");
    }
    if (name == "even" || name == "odd") {
      no_args();
      const int64_t x = as_int(v, e, what.c_str());
      return (x % 2 == 0) == (name == "even");
    }
    error(e, "the test '" + name + "' is not supported");
  }
};

}  // namespace

Template Template::parse(const std::string& source, const std::string& where, const Limits& limits) {
  auto program = std::make_shared<Program>();
  program->where = where;
  program->limits = limits;
  const std::vector<Token> tokens = Lexer(source, program->where).run();
  program->body = Parser(tokens, program->where, program->limits).parse_template();
  Template t;
  t.program_ = std::move(program);
  return t;
}

std::string Template::render(const nlohmann::json& vars) const {
  if (!program_) throw std::runtime_error("[ChatTemplate] render() on an empty template");
  return Renderer(*program_).run(vars);
}

const std::string& Template::where() const {
  static const std::string none = "(empty template)";
  return program_ ? program_->where : none;
}

}  // namespace ressa::io::jinja
