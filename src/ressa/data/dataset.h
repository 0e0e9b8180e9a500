// VQA dataset directories: <dir>/{train,val,test}.jsonl plus the images they reference.
// One JSON object per line:
//   {"id": str, "image": "images/x.png", "question": str, "answer": str, "family": str}
// plus an optional "sources": [str, ...] (provenance; e.g. which generator or original
// dataset an example came from). Other keys are ignored, so users can keep extra metadata.
#pragma once
#include <string>
#include <vector>

namespace ressa::data {

struct VqaExample {
  std::string id;        // unique within a file
  std::string image;     // path relative to the dataset directory, e.g. "images/train_000000.png"
  std::string question;  // free text; ShapesVQA: lower-case words, ends with " ?"
  std::string answer;    // ShapesVQA: one lower-case word
  std::string family;    // question family, used for per-family accuracy
  std::vector<std::string> sources;  // optional provenance, written only when non-empty
};

// Reads and validates a JSONL file. Blank lines are skipped. Every other line must be a JSON
// object with non-empty string fields id, image, question, answer, family; "image" must be a
// relative path without ".." components; ids must be unique. Throws std::runtime_error
// "[read_jsonl] <path>:<line>: <what>" (or "[read_jsonl] <path>: ..." for file errors).
std::vector<VqaExample> read_jsonl(const std::string& path);
// The same parser on JSONL text held in memory; `where` stands for the path in messages.
std::vector<VqaExample> parse_jsonl(const std::string& text, const std::string& where);

// Writes one compact JSON object per line, atomically. Validates like read_jsonl
// (std::invalid_argument naming the example index) so a written file always reads back.
void write_jsonl(const std::string& path, const std::vector<VqaExample>& examples);

// Reads <dataset_dir>/<split>.jsonl; split must be "train", "val" or "test"
// (std::invalid_argument otherwise). Throws std::runtime_error naming the path if missing.
std::vector<VqaExample> read_split(const std::string& dataset_dir, const std::string& split);

// Joins the dataset directory and an example's relative image path.
std::string image_path(const std::string& dataset_dir, const VqaExample& ex);

}  // namespace ressa::data
