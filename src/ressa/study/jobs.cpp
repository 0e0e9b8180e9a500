// Job graph and cache keys (see jobs.h).
#include "ressa/study/jobs.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "ressa/core/error.h"
#include "ressa/core/hash.h"

namespace ressa::study {

std::string hash_strings(const std::vector<std::string>& parts) {
  Fnv1a h;
  for (const auto& p : parts) {
    h.add(p);
    h.add(0x1f);
  }
  return h.hex();
}

std::string JobGraph::add(const std::string& kind, std::vector<std::string> args, const std::vector<std::string>& deps,
                          const std::string& out_flag, const std::string& out_suffix, double cost_s, nlohmann::json config,
                          bool resumable) {
  std::vector<std::string> key{kind};
  key.insert(key.end(), args.begin(), args.end());
  key.insert(key.end(), deps.begin(), deps.end());
  const std::string id = kind + "-" + hash_strings(key);
  if (jobs_.count(id)) return id;
  for (const auto& d : deps) RESSA_CHECK(jobs_.count(d), "[JobGraph] job ", id, " depends on unknown job ", d);
  Job j;
  j.id = id;
  j.kind = kind;
  j.out = (std::filesystem::path(cache_) / (id + out_suffix)).string();
  j.record = (std::filesystem::path(cache_) / (id + ".job.json")).string();
  for (auto& a : args) {  // "{out}" in an argument stands for the output path (e.g. --json {out}.json)
    const auto pos = a.find("{out}");
    if (pos != std::string::npos) {
      a.replace(pos, 5, j.out);
      j.extra_outputs.push_back(a);
    }
  }
  args.push_back(out_flag);
  args.push_back(j.out);
  j.args = std::move(args);
  j.deps = deps;
  if (resumable) j.resume_dir = j.out + ".ckpt";
  j.cost_s = cost_s;
  config["id"] = id;
  j.config = std::move(config);
  jobs_.emplace(id, std::move(j));
  order_.push_back(id);
  return id;
}

namespace {
// FNV-1a of the file's bytes, read in 1 MiB blocks (a weight file need not fit in memory twice).
std::string content_hash(const std::filesystem::path& f) {
  std::ifstream in(f, std::ios::binary);
  RESSA_CHECK(in, "[JobGraph] cannot read ", f.string());
  Fnv1a h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h.add(buf.data(), size_t(in.gcount()));
  }
  return h.hex();
}

// Name, size and content hash of `path` (a file) or of each file directly in it (a directory),
// leaving out documentation (*.md): editing a model's README must not re-run what depends on it,
// and copying or touching its files (a fresh clone) must not either.
std::vector<std::string> file_signature(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() != ".md") files.push_back(e.path());
  } else if (fs::is_regular_file(path)) {
    files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> sig;
  for (const auto& f : files)
    sig.insert(sig.end(), {f.filename().string(), std::to_string(fs::file_size(f)), content_hash(f)});
  return sig;
}
}  // namespace

std::string JobGraph::add_existing(const std::string& kind, const std::string& path, nlohmann::json config) {
  std::vector<std::string> key{kind, "existing", path};
  for (auto& part : file_signature(path)) key.push_back(std::move(part));
  const std::string id = kind + "-" + hash_strings(key);
  if (jobs_.count(id)) return id;
  Job j;
  j.id = id;
  j.kind = kind;
  j.out = path;
  j.cost_s = 0;
  config["id"] = id;
  config["path"] = path;
  j.config = std::move(config);
  jobs_.emplace(id, std::move(j));
  order_.push_back(id);
  return id;
}

const Job& JobGraph::at(const std::string& id) const {
  auto it = jobs_.find(id);
  RESSA_CHECK(it != jobs_.end(), "[JobGraph] unknown job ", id);
  return it->second;
}

}  // namespace ressa::study
