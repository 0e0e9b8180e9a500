// Reading and writing the pruning part of an llm-compressor recipe (docs/recipes.md) with
// yaml-cpp. The reader walks the recipe's stages and groups, keeps the one pruning modifier,
// and checks each of its arguments against what ressa implements: every refusal names the key,
// its path in the recipe and its line. Torch-free.
#include "ressa/io/recipe.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "ressa/core/error.h"

namespace ressa::io {

namespace {

constexpr const char* kParse = "[parse_pruning_recipe] ";

const std::vector<std::string>& pruning_modifiers() {
  static const std::vector<std::string> names = {"SparseGPTModifier", "WandaPruningModifier",
                                                 "MagnitudePruningModifier", "DSnoTPruningModifier"};
  return names;
}

// Keys of llm-compressor's gradual (scheduled) pruning: ressa prunes once, before any training.
const std::vector<std::string>& schedule_keys() {
  static const std::vector<std::string> keys = {"start", "end", "update", "update_frequency",
                                                "update_scheduler", "scheduler_args", "leave_enabled"};
  return keys;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A value as quoted in an error message, cut to a readable length.
std::string shown(const std::string& s) {
  return "'" + (s.size() <= 80 ? s : s.substr(0, 77) + "...") + "'";
}

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string dotted(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

const char* kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return "a scalar";
    default: return "nothing";
  }
}

// A whole string as a double (decimal, optional sign and exponent; no hex, inf or nan, no
// leading or trailing text), independent of the C locale.
bool parse_double(const std::string& s, double& out) {
  const char* b = s.data();
  const char* e = s.data() + s.size();
  const bool negative = b != e && *b == '-';
  if (b != e && (*b == '+' || *b == '-')) ++b;
  if (b == e || !(std::isdigit(static_cast<unsigned char>(*b)) || *b == '.')) return false;  // no inf/nan
  const auto [ptr, ec] = std::from_chars(b, e, out, std::chars_format::general);
  if (negative) out = -out;
  return ec == std::errc() && ptr == e;
}

// A whole string of decimal digits (optional '+') as a non-negative int.
bool parse_int(const std::string& s, int& out) {
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (b != e && *b == '+') ++b;
  if (b == e || *b < '0' || *b > '9') return false;
  const auto [ptr, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && ptr == e;
}

// Fewest digits that read back to the same double ("0.5", "0.001", "1e-05").
std::string format_double(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

// "N:M" -> (n, m); false unless both are integers. "unstructured" (llm-compressor's
// MagnitudePruningModifier spelling) is (0, 0).
bool parse_nm(const std::string& s, int& n, int& m) {
  if (s == "unstructured") {
    n = m = 0;
    return true;
  }
  const size_t colon = s.find(':');
  if (colon == std::string::npos) return false;
  return parse_int(s.substr(0, colon), n) && parse_int(s.substr(colon + 1), m);
}

// One key of a mapping, with the mark of the key (for errors) and its value.
struct Entry {
  std::string key;
  YAML::Mark mark;
  YAML::Node value;
};

// A pruning modifier found in the recipe.
struct Found {
  std::string name;
  std::string path;  // e.g. pruning_stage.pruning_modifiers.SparseGPTModifier
  YAML::Mark mark;
  YAML::Node args;
};

class Reader {
 public:
  explicit Reader(const std::string& where) : where_(where) {}

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& path, const std::string& msg) const {
    std::string loc = where_;
    if (!mark.is_null() && mark.line >= 0) loc += ":" + std::to_string(mark.line + 1);
    fail_arg(kParse, loc, ": ", path.empty() ? "" : path + ": ", msg);
  }

  // `top`: the first document; `documents`: how many the text holds, counted up to 2 (`second`
  // marks where the second starts).
  PruningRecipe read(const YAML::Node& top, int documents, const YAML::Mark& second) {
    if (documents > 1) fail(second, "", "the text holds more than one YAML document; a recipe is one");
    if (documents == 0 || top.IsNull())
      fail(YAML::Mark::null_mark(), "",
           "the recipe is empty; expected a mapping of stages (<name>_stage:) holding one pruning modifier");
    if (!top.IsMap())
      fail(top.Mark(), "",
           std::string("a recipe is a mapping of stages (<name>_stage:) holding groups (<name>_modifiers:), got ") +
               kind_of(top));
    for (const Entry& e : entries(top, "")) {
      if (e.key == "version") continue;  // llm-compressor's recipe version: informational
      if (ends_with(e.key, "_stage")) {
        read_stage(e);
      } else if (ends_with(e.key, "_modifiers")) {
        read_group(e, e.key);
      } else {
        fail(e.mark, e.key,
             "unknown top-level key; a recipe holds stages (<name>_stage:), groups (<name>_modifiers:) and version:");
      }
    }
    if (!found_)
      fail(YAML::Mark::null_mark(), "",
           "no pruning modifier in the recipe; expected one of " + join(pruning_modifiers()));
    return read_modifier(*found_);
  }

 private:
  // The keys of a mapping in file order: scalar keys, each once.
  std::vector<Entry> entries(const YAML::Node& map, const std::string& path) const {
    std::vector<Entry> out;
    std::set<std::string> seen;
    for (YAML::const_iterator it = map.begin(); it != map.end(); ++it) {
      // Copies: the iterator's -> returns a temporary, and a Node is a handle.
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      if (!k.IsScalar())
        fail(k.Mark(), path, std::string("a key must be a string, got ") + kind_of(k));
      const std::string& key = k.Scalar();
      if (!seen.insert(key).second) fail(k.Mark(), dotted(path, key), "duplicate key");
      out.push_back({key, k.Mark(), v});
    }
    return out;
  }

  void read_stage(const Entry& stage) {
    if (!stage.value.IsMap())
      fail(stage.mark, stage.key,
           std::string("a stage is a mapping of groups (<name>_modifiers:), got ") + kind_of(stage.value));
    for (const Entry& e : entries(stage.value, stage.key)) {
      const std::string path = dotted(stage.key, e.key);
      if (ends_with(e.key, "_modifiers")) {
        read_group(e, path);
      } else if (e.key == "run_type") {
        // Older llm-compressor recipes mark each stage oneshot or train; ressa runs one shot.
        if (!e.value.IsScalar() || e.value.Scalar() != "oneshot")
          fail(e.value.Mark(), path,
               std::string("ressa runs one-shot stages only (run_type: oneshot), got ") +
                   (e.value.IsScalar() ? shown(e.value.Scalar()) : kind_of(e.value)));
      } else {
        fail(e.mark, path, "unknown key in a stage; a stage holds groups (<name>_modifiers:) and run_type: oneshot");
      }
    }
  }

  void read_group(const Entry& group, const std::string& path) {
    if (!group.value.IsMap())
      fail(group.mark, path,
           std::string("a group is a mapping of modifiers (ModifierName: {arguments}), got ") + kind_of(group.value));
    for (const Entry& e : entries(group.value, path)) {
      const std::string mpath = dotted(path, e.key);
      if (!contains(pruning_modifiers(), e.key))
        fail(e.mark, mpath,
             e.key + " is not a pruning modifier: ressa runs the pruning modifiers only (" + join(pruning_modifiers()) +
                 "); remove it, or run it with llm-compressor");
      if (found_)
        fail(e.mark, mpath,
             "a second pruning modifier: ressa runs exactly one per recipe (the first is " + found_->path + ", line " +
                 std::to_string(found_->mark.line + 1) + ")");
      found_ = Found{e.key, mpath, e.mark, e.value};
    }
  }

  // ---- a modifier's arguments --------------------------------------------------------------

  std::string scalar(const Entry& e, const std::string& path, const std::string& expected) const {
    if (!e.value.IsScalar())
      fail(e.value.Mark(), dotted(path, e.key), "expected " + expected + ", got " + kind_of(e.value));
    return e.value.Scalar();
  }

  // A finite number in [lo, hi), or in (lo, hi) when lo_open.
  double number(const Entry& e, const std::string& path, double lo, bool lo_open, double hi) const {
    const std::string what = std::string("a number in ") + (lo_open ? "(" : "[") + format_double(lo) + ", " +
                             (std::isinf(hi) ? "inf" : format_double(hi)) + ")";
    const std::string s = scalar(e, path, what);
    double v = 0;
    const bool ok = parse_double(s, v) && std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v < hi;
    if (!ok) fail(e.value.Mark(), dotted(path, e.key), "expected " + what + ", got " + shown(s));
    return v;
  }

  double sparsity_value(const Entry& e, const std::string& path) const {
    if (e.value.IsSequence() || e.value.IsMap())
      fail(e.value.Mark(), dotted(path, e.key),
           "per-layer sparsity lists are not supported; give one sparsity and set other patterns for some modules "
           "with ressa_overrides (docs/recipes.md)");
    return number(e, path, 0, false, 1);
  }

  std::vector<std::string> patterns(const Entry& e, const std::string& path) const {
    const std::string p = dotted(path, e.key);
    std::vector<std::string> out;
    if (e.value.IsScalar()) {
      out.push_back(e.value.Scalar());
    } else if (e.value.IsSequence()) {
      for (YAML::const_iterator it = e.value.begin(); it != e.value.end(); ++it) {
        const YAML::Node item = *it;
        if (!item.IsScalar())
          fail(item.Mark(), p, std::string("expected a list of name patterns (strings), got an item that is ") +
                                   kind_of(item));
        out.push_back(item.Scalar());
      }
      if (out.empty())
        fail(e.value.Mark(), p,
             "an empty list; give at least one name pattern, or leave " + e.key + " out" +
                 (e.key == "targets" ? " for the default targets" : ""));
    } else {
      fail(e.value.Mark(), p,
           std::string("expected a name pattern or a list of them (\"Linear\", \"re:<regex>\", a module name), got ") +
               kind_of(e.value));
    }
    for (const auto& s : out)
      if (s.empty()) fail(e.value.Mark(), p, "an empty name pattern");
    return out;
  }

  // "0.6" or "2:4", as prune::SparsityPattern::to_string writes it.
  std::string override_pattern(const YAML::Node& v, const std::string& path) const {
    const std::string what = "a sparsity in [0, 1) (e.g. 0.6) or an N:M pattern with 0 < N < M (e.g. \"2:4\")";
    if (!v.IsScalar()) fail(v.Mark(), path, "expected " + what + ", got " + kind_of(v));
    const std::string& s = v.Scalar();
    int n = 0, m = 0;
    if (s.find(':') != std::string::npos) {
      if (!parse_nm(s, n, m) || n <= 0 || m <= n) fail(v.Mark(), path, "expected " + what + ", got " + shown(s));
      return std::to_string(n) + ":" + std::to_string(m);
    }
    double r = 0;
    if (!parse_double(s, r) || !std::isfinite(r) || r < 0 || r >= 1)
      fail(v.Mark(), path, "expected " + what + ", got " + shown(s));
    return format_double(r);
  }

  PruningRecipe read_modifier(const Found& f) const {
    const bool sparsegpt = f.name == "SparseGPTModifier";
    const bool dsnot = f.name == "DSnoTPruningModifier";
    const bool magnitude = f.name == "MagnitudePruningModifier";
    std::vector<std::string> supported = {"sparsity"};
    if (magnitude) supported.insert(supported.end(), {"init_sparsity", "final_sparsity"});
    supported.insert(supported.end(),
                     {"mask_structure", "targets", "ignore", "sparsity_profile", "owl_m", "owl_lmbda"});
    if (sparsegpt) supported.insert(supported.end(), {"block_size", "dampening_frac"});
    if (dsnot) supported.push_back("dsnot_base");
    supported.insert(supported.end(), {"ressa_granularity", "ressa_overrides"});

    if (!f.args.IsNull() && !f.args.IsMap())
      fail(f.mark, f.path, std::string("a modifier's arguments are a mapping, got ") + kind_of(f.args));
    std::vector<Entry> given;  // keys with a value (a null value counts as absent)
    if (f.args.IsMap()) {
      for (Entry& e : entries(f.args, f.path)) {
        const std::string p = dotted(f.path, e.key);
        if (contains(schedule_keys(), e.key))
          fail(e.mark, p,
               "ressa prunes in one shot, so llm-compressor's schedule arguments (" + join(schedule_keys()) +
                   ") are not supported; " + f.name + " supports: " + join(supported));
        if ((e.key == "block_size" || e.key == "dampening_frac") && !sparsegpt)
          fail(e.mark, p, e.key + " is a SparseGPTModifier argument; " + f.name + " supports: " + join(supported));
        if (e.key == "dsnot_base" && !dsnot)
          fail(e.mark, p, "dsnot_base is a DSnoTPruningModifier argument; " + f.name + " supports: " + join(supported));
        if (!contains(supported, e.key))
          fail(e.mark, p, "unknown key; " + f.name + " supports: " + join(supported));
        if (!e.value.IsNull()) given.push_back(std::move(e));
      }
    }
    const auto arg = [&](const std::string& key) -> const Entry* {
      for (const Entry& e : given)
        if (e.key == key) return &e;
      return nullptr;
    };

    PruningRecipe r;
    r.modifier = f.name;
    const std::string& path = f.path;

    // mask_structure first: it decides what sparsity means.
    int n = 0, m = 0;
    const Entry* mask = arg("mask_structure");
    if (mask) {
      const std::string s = scalar(*mask, path, "\"N:M\" or \"0:0\"");
      const bool ok = parse_nm(s, n, m) && ((n == 0 && m == 0) || (n > 0 && m > n));
      if (!ok)
        fail(mask->value.Mark(), dotted(path, "mask_structure"),
             "expected \"N:M\" with integers 0 < N < M (N zeros in every M consecutive weights, e.g. \"2:4\") "
             "or \"0:0\" (unstructured), got " + shown(s) +
                 (s == "channel" || s == "filter" || s.rfind("block_", 0) == 0
                      ? "; llm-compressor's channel, filter and block structures are not supported"
                      : ""));
    }
    const bool nm = m > 0;
    r.mask_structure = std::to_string(n) + ":" + std::to_string(m);

    // sparsity (MagnitudePruningModifier: also final_sparsity, with init_sparsity absent or equal).
    const Entry* sp = arg("sparsity");
    std::optional<double> sparsity;
    if (sp) sparsity = sparsity_value(*sp, path);
    if (magnitude) {
      const Entry* init = arg("init_sparsity");
      const Entry* fin = arg("final_sparsity");
      if (fin && sp)
        fail(fin->mark, dotted(path, "final_sparsity"), "give either sparsity or final_sparsity, not both");
      if (init && !fin)
        fail(init->mark, dotted(path, "init_sparsity"),
             "init_sparsity needs final_sparsity (equal to it: ressa prunes in one shot), or give sparsity instead");
      if (fin) {
        sparsity = sparsity_value(*fin, path);
        if (init) {
          const double i = sparsity_value(*init, path);
          if (i != *sparsity)
            fail(init->value.Mark(), dotted(path, "init_sparsity"),
                 "init_sparsity " + format_double(i) + " differs from final_sparsity " + format_double(*sparsity) +
                     ": ressa prunes in one shot, not gradually; set them equal or give sparsity only");
        }
      }
    }
    const std::string sparsity_key = (magnitude && !sp && arg("final_sparsity")) ? "final_sparsity" : "sparsity";
    if (nm) {
      const double ratio = double(n) / double(m);
      if (sparsity && std::fabs(*sparsity - ratio) > 1e-9) {
        const Entry* e = arg(sparsity_key);
        fail(e->value.Mark(), dotted(path, sparsity_key),
             sparsity_key + " " + format_double(*sparsity) + " does not match mask_structure " + r.mask_structure +
                 ", which prunes exactly N/M = " + format_double(ratio) + "; leave " + sparsity_key +
                 " out or set it to " + format_double(ratio));
      }
      r.sparsity = ratio;
    } else {
      if (!sparsity)
        fail(f.mark, path,
             std::string(magnitude ? "sparsity (or final_sparsity)" : "sparsity") +
                 " is required with an unstructured mask_structure (\"0:0\")");
      r.sparsity = *sparsity;
    }

    if (const Entry* e = arg("targets")) r.targets = patterns(*e, path);
    if (const Entry* e = arg("ignore")) r.ignore = patterns(*e, path);

    if (const Entry* e = arg("sparsity_profile")) {
      const std::string s = lower(scalar(*e, path, "owl or uniform"));
      if (s == "owl") {
        r.sparsity_profile = "owl";
      } else if (s != "uniform") {
        fail(e->value.Mark(), dotted(path, "sparsity_profile"),
             "expected owl or uniform, got " + shown(e->value.Scalar()));
      }
      if (r.sparsity_profile == "owl" && nm)
        fail(e->value.Mark(), dotted(path, "sparsity_profile"),
             "sparsity_profile: owl needs an unstructured mask_structure: the " + r.mask_structure +
                 " pattern fixes every layer's sparsity");
    }
    for (const char* key : {"owl_m", "owl_lmbda"}) {
      const Entry* e = arg(key);
      if (!e) continue;
      if (r.sparsity_profile != "owl")
        fail(e->mark, dotted(path, key), std::string(key) + " is an argument of sparsity_profile: owl");
      if (e->key == "owl_m") {
        r.owl_m = number(*e, path, 0, true, kInf);
      } else {
        r.owl_lmbda = number(*e, path, 0, false, kInf);
      }
    }

    if (const Entry* e = arg("block_size")) {
      const std::string s = scalar(*e, path, "a positive integer");
      int v = 0;
      if (!parse_int(s, v) || v <= 0)
        fail(e->value.Mark(), dotted(path, "block_size"), "expected a positive integer, got " + shown(s));
      r.block_size = v;
    }
    if (const Entry* e = arg("dampening_frac"))
      r.dampening_frac = number(*e, path, 0, false, kInf);
    if (const Entry* e = arg("dsnot_base")) {
      const std::string s = scalar(*e, path, "wanda, magnitude or sparsegpt");
      if (s != "wanda" && s != "magnitude" && s != "sparsegpt")
        fail(e->value.Mark(), dotted(path, "dsnot_base"), "expected wanda, magnitude or sparsegpt, got " + shown(s));
      r.dsnot_base = s;
    }
    if (const Entry* e = arg("ressa_granularity")) {
      const std::string s = scalar(*e, path, "row or matrix");
      if (s != "row" && s != "matrix")
        fail(e->value.Mark(), dotted(path, "ressa_granularity"), "expected row or matrix, got " + shown(s));
      r.granularity = s;
    }
    if (const Entry* e = arg("ressa_overrides")) {
      const std::string p = dotted(path, "ressa_overrides");
      if (!e->value.IsMap())
        fail(e->value.Mark(), p,
             std::string("expected a mapping of name pattern to pattern (\"re:.*down_proj\": \"2:4\"), got ") +
                 kind_of(e->value));
      for (const Entry& o : entries(e->value, p)) {
        if (o.key.empty()) fail(o.mark, p, "an empty name pattern");
        r.overrides.emplace_back(o.key, override_pattern(o.value, dotted(p, o.key)));
      }
    }
    return r;
  }

  std::string where_;
  std::optional<Found> found_;
};

// A YAML double-quoted scalar holding exactly `s`: ASCII as is, '"' and '\' escaped, control
// characters as \xNN, well-formed UTF-8 as \u/\U escapes (so the output is ASCII and no character
// can be read as a line break); bytes that are not well-formed UTF-8 are copied, as yaml-cpp
// reads them back unchanged.
std::string quote(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = "\"";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t size = s.size();
  for (size_t i = 0; i < size;) {
    const unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
      ++i;
    } else if (c < 0x80) {
      out += char(c);
      ++i;
    } else {
      // Decode one well-formed UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF).
      const size_t len = c >= 0xF8 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
      uint32_t cp = len == 4 ? c & 0x07 : len == 3 ? c & 0x0F : c & 0x1F;
      bool ok = len >= 2 && i + len <= size;
      for (size_t k = 1; ok && k < len; ++k) {
        ok = (p[i + k] & 0xC0) == 0x80;
        cp = (cp << 6) | (p[i + k] & 0x3F);
      }
      ok = ok && cp >= (len == 2 ? 0x80u : len == 3 ? 0x800u : 0x10000u) && cp <= 0x10FFFF &&
           !(cp >= 0xD800 && cp <= 0xDFFF);
      if (!ok) {
        out += char(c);
        ++i;
        continue;
      }
      const int digits = cp > 0xFFFF ? 8 : 4;
      out += digits == 8 ? "\\U" : "\\u";
      for (int d = digits - 1; d >= 0; --d) out += hex[(cp >> (4 * d)) & 15];
      i += len;
    }
  }
  return out + "\"";
}

std::string flow_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + quote(v[i]);
  return out + "]";
}

// Counts the documents of a YAML stream without building them. (yaml-cpp 0.7's LoadAll never
// returns on some invalid input, e.g. a lone ",": the parser reports documents without end.)
class DocumentCounter : public YAML::EventHandler {
 public:
  YAML::Mark second = YAML::Mark::null_mark();  // where the second document starts
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++starts_ == 2) second = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  int starts_ = 0;
};

}  // namespace

PruningRecipe parse_pruning_recipe(const std::string& yaml_text, const std::string& where) {
  YAML::Node top;
  int documents = 0;
  DocumentCounter counter;
  try {
    std::istringstream in(yaml_text);
    YAML::Parser parser(in);
    while (documents < 2 && parser.HandleNextDocument(counter)) ++documents;
    if (documents == 1) top = YAML::Load(yaml_text);
  } catch (const YAML::DeepRecursion& e) {
    std::string loc = where;
    if (!e.mark.is_null()) loc += ":" + std::to_string(e.mark.line + 1);
    fail_arg(kParse, loc, ": YAML nested too deeply (yaml-cpp stops at depth ", e.depth(), ")");
  } catch (const YAML::Exception& e) {
    std::string loc = where;
    if (!e.mark.is_null()) loc += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    fail_arg(kParse, loc, ": YAML syntax error: ", e.msg);
  }
  try {
    return Reader(where).read(top, documents, counter.second);
  } catch (const YAML::Exception& e) {  // not expected from a loaded document; kept as the documented type
    fail_arg(kParse, where, ": ", e.what());
  }
}

PruningRecipe load_pruning_recipe(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail("[load_pruning_recipe] ", path, " is a directory, not a recipe file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("[load_pruning_recipe] cannot open ", path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("[load_pruning_recipe] cannot read ", path);
  return parse_pruning_recipe(text.str(), path);
}

std::string to_yaml(const PruningRecipe& r) {
  RESSA_CHECK_ARG(contains(pruning_modifiers(), r.modifier), "[to_yaml] modifier must be one of ",
                  join(pruning_modifiers()), ", got '", r.modifier, "'");
  const std::string ind = "      ";
  std::string y = "pruning_stage:\n  pruning_modifiers:\n    " + r.modifier + ":\n";
  int n = 0, m = 0;
  const bool nm = parse_nm(r.mask_structure, n, m) && m > 0 && n > 0 && n < m;
  y += ind + "sparsity: " + format_double(nm ? double(n) / double(m) : r.sparsity) + "\n";
  y += ind + "mask_structure: " + quote(r.mask_structure) + "\n";
  if (!r.targets.empty()) y += ind + "targets: " + flow_list(r.targets) + "\n";
  if (!r.ignore.empty()) y += ind + "ignore: " + flow_list(r.ignore) + "\n";
  if (r.sparsity_profile == "owl") {
    y += ind + "sparsity_profile: \"owl\"\n";
    y += ind + "owl_m: " + format_double(r.owl_m) + "\n";
    y += ind + "owl_lmbda: " + format_double(r.owl_lmbda) + "\n";
  } else if (!r.sparsity_profile.empty()) {
    y += ind + "sparsity_profile: " + quote(r.sparsity_profile) + "\n";  // refused below unless "uniform"
  }
  if (r.block_size) y += ind + "block_size: " + std::to_string(*r.block_size) + "\n";
  if (r.dampening_frac) y += ind + "dampening_frac: " + format_double(*r.dampening_frac) + "\n";
  if (r.dsnot_base) y += ind + "dsnot_base: " + quote(*r.dsnot_base) + "\n";
  if (r.granularity) y += ind + "ressa_granularity: " + quote(*r.granularity) + "\n";
  if (!r.overrides.empty()) {
    y += ind + "ressa_overrides:\n";
    for (const auto& [names, pattern] : r.overrides) {
      // YAML caps an implicit key at 1024 characters; a longer one is written as an explicit "? key".
      const std::string key = quote(names);
      if (key.size() <= 1000) {
        y += ind + "  " + key + ": " + quote(pattern) + "\n";
      } else {
        y += ind + "  ? " + key + "\n" + ind + "  : " + quote(pattern) + "\n";
      }
    }
  }
  // What is written must read back: a struct the parser refuses is refused here, with its reason.
  try {
    (void)parse_pruning_recipe(y, "to_yaml output");
  } catch (const std::invalid_argument& e) {
    fail_arg("[to_yaml] this recipe cannot be written: ", e.what());
  }
  return y;
}

bool operator==(const PruningRecipe& a, const PruningRecipe& b) {
  return a.modifier == b.modifier && a.sparsity == b.sparsity && a.mask_structure == b.mask_structure &&
         a.targets == b.targets && a.ignore == b.ignore && a.sparsity_profile == b.sparsity_profile &&
         a.owl_m == b.owl_m && a.owl_lmbda == b.owl_lmbda && a.block_size == b.block_size &&
         a.dampening_frac == b.dampening_frac && a.dsnot_base == b.dsnot_base && a.granularity == b.granularity &&
         a.overrides == b.overrides;
}

}  // namespace ressa::io
