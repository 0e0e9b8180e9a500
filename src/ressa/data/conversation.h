// LLaVA conversation files: the JSON list LLaVA's training code and most LLaVA-format datasets
// (LLaVA-Instruct, ShareGPT4V, the llava_v1_5_mix665k recipe) use, accepted by `--data FILE.json`
// of prune, repair and eval (docs/data.md, "LLaVA conversation file"):
//   [{"id": "000001", "image": "coco/train2017/000000033471.jpg",
//     "conversations": [{"from": "human", "value": "<image>\nWhat are the colors of the bus?"},
//                       {"from": "gpt", "value": "The bus is white and red."}, ...]}, ...]
// Turns alternate human, gpt, human, gpt ... and end with a gpt turn. The "<image>" marker appears
// once, in the first human turn; as LLaVA's preprocessing does, it is taken out of the text and the
// image goes before that turn's text. Other keys are ignored. Torch-free.
#pragma once
#include <string>
#include <vector>

#include "ressa/data/dataset.h"

namespace ressa::data {

struct ChatTurn {
  std::string role;  // "user" (LLaVA's "human") or "assistant" ("gpt")
  std::string text;  // the value, without the "<image>" marker and the newline beside it
};

struct Conversation {
  std::string id;              // a string, or a JSON integer written in decimal
  std::string image;           // path as written: relative to the file (or --image-folder), or absolute
  std::vector<ChatTurn> turns;  // user, assistant, user, assistant, ...; the image belongs to turn 0
};

// Parses the file's text; `where` names it in messages. Throws std::runtime_error
// "[conversations] <where>: item <i> (id '<id>'): <what>" for anything else than the format above
// (an item without an image is refused: ressa calibrates and repairs on image-text pairs).
std::vector<Conversation> parse_llava_conversations(const std::string& text, const std::string& where);
// Reads and parses a file (std::runtime_error naming it when it is missing or unreadable).
std::vector<Conversation> read_llava_conversations(const std::string& path);

// A dataset-directory example as a one-round conversation (question, answer).
Conversation to_conversation(const VqaExample& ex);

// Where prune, repair and eval take their examples from (`--data`, `--image-folder`): a dataset
// directory (its <split>.jsonl) or a LLaVA conversation file (any path that is not a directory;
// it has no splits: every item is used).
struct DataSource {
  DataSource(std::string p = "", std::string folder = "") : path(std::move(p)), image_folder(std::move(folder)) {}
  std::string path;
  std::string image_folder;  // conversation files: images relative to this, default the file's directory
  bool is_conversation_file() const;
  // The flags' checks, before any work (std::invalid_argument naming --data or --image-folder):
  // the path exists; --image-folder is given only with a conversation file, and is a directory.
  void validate() const;
};

struct Sample {
  Conversation conversation;
  std::string image_path;  // resolved: the file to read
  std::string family;      // dataset directories: the example's family; conversation files: "conversation"
};

struct Samples {
  std::string where;  // <dir>/<split>.jsonl or the conversation file, for messages
  std::vector<Sample> items;
};

// Reads the source's examples (std::runtime_error naming the file; --image-folder must be a
// directory and is refused for a dataset directory).
Samples read_samples(const DataSource& source, const std::string& split);

}  // namespace ressa::data
