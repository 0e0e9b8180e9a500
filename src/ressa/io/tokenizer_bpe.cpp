// BPE merge loop over a doubly linked list of symbols with a min-heap of candidate merges
// keyed by (rank, position), as Hugging Face tokenizers' Word::merge_all; merge ranks live in a
// hash map from the (left id, right id) pair.
#include "ressa/io/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

#include "ressa/io/tokenizer_unicode.h"

namespace ressa::io::tok {

BpeModel::BpeModel(const json& model, const std::unordered_map<std::string, int64_t>& vocab,
                   const JsonAt& at) {
  for (const char* key : {"dropout"})
    if (const json* v = find_field(model, key); v && !v->is_null())
      at.at(key).fail("BPE dropout is not supported (must be null)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = find_field(model, key); v && !v->is_null() && !(v->is_string() && v->get_ref<const std::string&>().empty()))
      at.at(key).fail("not supported (must be null or \"\")");
  fuse_unk_ = bool_field(model, "fuse_unk", false, at);
  byte_fallback_ = bool_field(model, "byte_fallback", false, at);
  ignore_merges_ = bool_field(model, "ignore_merges", false, at);
  vocab_.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    if (id > INT32_MAX) at.at("vocab").fail("id ", id, " of '", tok, "' is too large");
    vocab_.emplace(tok, int32_t(id));
  }
  if (const json* u = find_field(model, "unk_token"); u && !u->is_null()) {
    if (!u->is_string()) at.at("unk_token").fail("must be a string or null");
    auto it = vocab_.find(u->get<std::string>());
    if (it == vocab_.end()) at.at("unk_token").fail("'", u->get<std::string>(), "' is not in the vocab");
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  const json* merges = find_field(model, "merges");
  if (!merges || !merges->is_array()) at.at("merges").fail("must be an array");
  merges_.reserve(merges->size());
  const JsonAt mat = at.at("merges");
  for (size_t r = 0; r < merges->size(); ++r) {
    const json& m = (*merges)[r];
    std::string a, b;
    if (m.is_string()) {  // "a b"
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        mat.at(r).fail("'", s, "' is not two tokens separated by one space");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>(), b = m[1].get<std::string>();
    } else {
      mat.at(r).fail("must be a string \"a b\" or a pair [\"a\", \"b\"]");
    }
    auto find = [&](const std::string& t) {
      auto it = vocab_.find(t);
      if (it == vocab_.end()) mat.at(r).fail("token '", t, "' is not in the vocab");
      return it->second;
    };
    const int32_t ia = find(a), ib = find(b), ic = find(a + b);
    merges_.insert_or_assign(pair_key(ia, ib), MergeTarget{int32_t(r), ic});  // a repeat: last wins, as HF
  }
}

void BpeModel::tokenize_uncached(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  auto push = [&](int32_t id) {
    const int32_t n = int32_t(sym.size());
    sym.push_back({id, n - 1, -1, true});
    if (n > 0) sym[size_t(n - 1)].next = n;
  };
  bool last_unk = false;
  std::string ch;
  for (size_t i = 0; i < word.size();) {
    const size_t len = unicode::utf8_len(word, i);
    ch.assign(word.substr(i, len));
    i += len;
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      push(it->second);
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : ch) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : ch) push(byte_ids_[b]);
        last_unk = false;
        continue;
      }
    }
    if (!unk_id_) continue;  // no unk token: the character is dropped, as HF does
    if (!(fuse_unk_ && last_unk)) push(int32_t(*unk_id_));
    last_unk = true;
  }

  struct Cand {
    int32_t rank, pos, id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int32_t pos) {
    const int32_t nx = sym[size_t(pos)].next;
    if (nx < 0) return;
    auto it = merges_.find(pair_key(sym[size_t(pos)].id, sym[size_t(nx)].id));
    if (it != merges_.end()) heap.push({it->second.rank, pos, it->second.id});
  };
  for (int32_t p = 0; p + 1 < int32_t(sym.size()); ++p) consider(p);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Symbol& s = sym[size_t(c.pos)];
    if (!s.alive || s.next < 0) continue;
    auto it = merges_.find(pair_key(s.id, sym[size_t(s.next)].id));
    if (it == merges_.end() || it->second.id != c.id) continue;  // stale candidate
    Symbol& r = sym[size_t(s.next)];
    r.alive = false;
    s.id = c.id;
    s.next = r.next;
    if (s.next >= 0) sym[size_t(s.next)].prev = c.pos;
    if (s.prev >= 0) consider(s.prev);
    consider(c.pos);
  }
  for (const Symbol& s : sym)
    if (s.alive) out.push_back(s.id);
}

void BpeModel::tokenize(std::string_view word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(std::string(word)); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  thread_local std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  tokenize_uncached(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(key, std::move(ids));
  }
}

}  // namespace ressa::io::tok
