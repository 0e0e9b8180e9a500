// The fuzz targets: one function per torch-free parser, shared by the libFuzzer harnesses
// (tests/fuzz/fuzz_<name>.cpp) and by the regression test that replays the inputs the fuzzer
// once crashed on (tests/unit/test_fuzz_regressions.cpp).
//
// Contract checked: for any bytes, a parser either returns a value that is usable (the target
// touches it the way ressa does) or throws std::runtime_error (exit 1 in the CLI, with a message
// naming the file). Any other exception escapes the target and counts as a bug, like a crash, a
// hang, a leak or a sanitizer report.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "ressa/data/conversation.h"
#include "ressa/data/dataset.h"
#include "ressa/data/idx.h"
#include "ressa/data/image.h"
#include "ressa/data/image_processor.h"
#include "ressa/io/chat_template.h"
#include "ressa/io/config.h"
#include "ressa/io/recipe.h"
#include "ressa/io/safetensors.h"
#include "ressa/io/tokenizer.h"

namespace ressa::fuzz {

// A broken invariant on a value the parser accepted: abort so libFuzzer keeps the input.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

// Runs f(); a std::runtime_error is the expected answer to bad input. Each parse_<name> below
// parses and uses one input (throwing on bad input); <name> is the fuzz target around it.
template <typename F>
void expect_parsed_or_runtime_error(F&& f) {
  try {
    f();
  } catch (const std::runtime_error&) {
  }
}

// Safetensors header (the bytes of a whole file): every accepted tensor's range is inside the
// buffer, and reading it touches only the input.
inline void parse_safetensors(const uint8_t* data, size_t size) {
  const io::SafetensorsHeader h = io::parse_safetensors_header(data, size, "fuzz.safetensors");
  check(h.data_start >= 8 && h.data_start <= size, "data_start inside the input");
  uint64_t covered = 0;
  unsigned sum = 0;
  for (const io::TensorInfo& t : h.tensors) {
    check(t.begin <= t.end && t.end <= size - h.data_start, "tensor range inside the buffer");
    check(uint64_t(t.numel()) * io::dtype_size(t.dtype) == t.nbytes(), "size matches shape");
    if (t.nbytes() > 0) sum += data[h.data_start + t.begin] + data[h.data_start + t.end - 1];
    covered += t.nbytes();
  }
  check(covered == size - h.data_start, "tensors tile the buffer");
  static volatile unsigned sink;  // keeps the reads above
  sink = sum;
  (void)sink;
}
inline void safetensors(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_safetensors(data, size); });
}

// model.safetensors.index.json text: every accepted shard name is a plain file name.
inline void parse_safetensors_index(const uint8_t* data, size_t size) {
  const auto map = io::parse_safetensors_index(std::string(reinterpret_cast<const char*>(data), size),
                                               "fuzz.index.json");
  for (const auto& [tensor, file] : map)
    check(!file.empty() && file.find('/') == std::string::npos && file.find("..") == std::string::npos,
          "shard names stay in the directory");
}
inline void safetensors_index(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_safetensors_index(data, size); });
}

// config.json text: an accepted config re-serialises to one that parses back the same.
inline void parse_config(const uint8_t* data, size_t size) {
  const io::LlavaConfig c = io::parse_config(std::string(reinterpret_cast<const char*>(data), size),
                                             "fuzz/config.json");
  check(c.image_tokens() > 0, "image tokens > 0");
  const io::LlavaConfig back = io::parse_config(io::config_to_json(c), "fuzz/config.json (re-read)");
  check(back.text.vocab_size == c.text.vocab_size && back.vision.image_size == c.vision.image_size &&
            back.image_tokens() == c.image_tokens(),
        "config.json round trip");
}
inline void config(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_config(data, size); });
}

// tokenizer.json text; an accepted tokenizer encodes a text and decodes the ids it produced.
inline void parse_tokenizer(const uint8_t* data, size_t size) {
  const io::Tokenizer t = io::Tokenizer::parse(std::string(reinterpret_cast<const char*>(data), size),
                                               "fuzz/tokenizer.json");
  const std::vector<int64_t> ids = t.encode("<s> What Color is the <image> circle ? </s>");
  for (int64_t id : ids) check(id >= 0 && id < t.vocab_size(), "encoded id inside the vocab");
  (void)t.decode(ids, true);
  (void)t.decode(ids, false);
}
inline void tokenizer(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_tokenizer(data, size); });
}

// A dataset split's JSONL text: accepted examples have the fields the rest of ressa relies on.
inline void parse_dataset(const uint8_t* data, size_t size) {
  const auto examples = data::parse_jsonl(std::string(reinterpret_cast<const char*>(data), size),
                                          "fuzz/train.jsonl");
  for (const auto& ex : examples)
    check(!ex.id.empty() && !ex.image.empty() && ex.image[0] != '/' && !ex.answer.empty(),
          "validated example fields");
}
inline void dataset(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_dataset(data, size); });
}

// A LLaVA conversation file's JSON text: an accepted item has what prune, repair and eval rely
// on (an id, an image path, and non-empty user/assistant rounds starting with the user).
inline void parse_conversations(const uint8_t* data, size_t size) {
  const auto items = data::parse_llava_conversations(std::string(reinterpret_cast<const char*>(data), size),
                                                     "fuzz/conversations.json");
  check(!items.empty(), "a non-empty list");
  for (const data::Conversation& c : items) {
    check(!c.id.empty() && !c.image.empty() && c.image.find('\0') == std::string::npos, "id and image path");
    check(!c.turns.empty() && c.turns.size() % 2 == 0, "whole user/assistant rounds");
    for (size_t t = 0; t < c.turns.size(); ++t) {
      check(c.turns[t].role == (t % 2 == 0 ? "user" : "assistant"), "roles alternate from the user");
      check(!c.turns[t].text.empty(), "non-empty text");
      check(c.turns[t].text.find("<image>") == std::string::npos, "the marker is taken out");
    }
  }
}
inline void conversations(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_conversations(data, size); });
}

// PNG/JPEG bytes: an accepted image has consistent dimensions and resizes like the data loader.
inline void parse_image(const uint8_t* data, size_t size) {
  const data::Image img = data::decode_image(std::string(reinterpret_cast<const char*>(data), size),
                                             "fuzz.png");
  check(img.width > 0 && img.height > 0 && img.width <= data::kMaxImageDim &&
            img.height <= data::kMaxImageDim,
        "image size in range");
  check(img.rgb.size() == size_t(img.width) * size_t(img.height) * 3, "RGB byte count");
  (void)data::resize_bilinear(img, 8, 8);
}
inline void image(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_image(data, size); });
}

// preprocessor_config.json text (the image_processor_config parser): an accepted config has
// sizes in range, and processes a 5x7 image into (3, H, W) pixels of the size it promised (only
// where that output is small, to keep executions fast).
inline void parse_preprocessor_config(const uint8_t* data, size_t size) {
  const std::string where = "fuzz/preprocessor_config.json";
  const data::ImageProcessor p(
      data::parse_image_processor_config(std::string(reinterpret_cast<const char*>(data), size), where), where);
  const data::ImageProcessorConfig& c = p.config();
  const auto side = [](int n) { return n >= 1 && n <= data::kMaxImageDim; };
  check(c.shortest_edge > 0 ? c.type == data::ImageProcessorType::kClip && side(c.shortest_edge)
                            : side(c.resize_height) && side(c.resize_width),
        "resize size in range");
  check(side(c.crop_height) && side(c.crop_width), "crop size in range");
  const auto resized = p.resized_size(7, 5);  // may throw std::runtime_error: too large
  const auto out = p.output_size(7, 5);
  if (int64_t(resized[0]) * resized[1] > 65536 || int64_t(out[0]) * out[1] > 65536) return;
  data::Image img{5, 7, std::vector<uint8_t>(5 * 7 * 3)};
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t(i * 37);
  const data::PixelValues px = p.process(img);
  check(px.height == out[0] && px.width == out[1], "output size as promised");
  check(px.pixels.size() == size_t(3) * size_t(px.height) * size_t(px.width), "pixel count");
}
inline void preprocessor_config(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_preprocessor_config(data, size); });
}

// Chat template text: parsed and rendered for a llava-hf style conversation with small limits
// (a runaway template must stop on a limit, with std::runtime_error, not hang or crash).
inline void parse_chat_template(const uint8_t* data, size_t size) {
  io::jinja::Limits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_loop_iterations = 10000;
  limits.max_work = 1 << 20;
  limits.max_value_nodes = 10000;
  const auto t = io::ChatTemplate::from_string(std::string(reinterpret_cast<const char*>(data), size), "fuzz.jinja",
                                               limits);
  // llava-hf templates read list contents, ChatML-style ones string contents: the first form
  // that renders counts.
  const nlohmann::json lists = nlohmann::json::parse(R"([
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
    {"role": "user", "content": [{"type": "text", "text": "And now?"}]}])");
  const nlohmann::json strings = nlohmann::json::parse(R"([
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "<image>What is this?"},
    {"role": "assistant", "content": "A cat."}, {"role": "user", "content": "And now?"}])");
  const nlohmann::json vars = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  std::string out;
  try {
    out = t.render(lists, true, vars);
  } catch (const std::runtime_error&) {
    out = t.render(strings, true, vars);
  }
  check(out.size() <= limits.max_output_bytes, "output within max_output_bytes");
}
inline void chat_template(const uint8_t* data, size_t size) {
  expect_parsed_or_runtime_error([&] { parse_chat_template(data, size); });
}

// IDX bytes (raw or gzip): parse_idx accepts an images file or a labels file; the fuzz target
// reads every input both ways.
inline void parse_idx(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const data::IdxImages im = data::parse_idx_images(bytes, "fuzz-images.idx");
    check(im.pixels.size() == size_t(im.count) * size_t(im.rows) * size_t(im.cols), "pixel count");
  } catch (const std::runtime_error&) {
    (void)data::parse_idx_labels(bytes, "fuzz-labels.idx");
  }
}
inline void idx(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  expect_parsed_or_runtime_error([&] {
    const data::IdxImages im = data::parse_idx_images(bytes, "fuzz-images.idx");
    check(im.pixels.size() == size_t(im.count) * size_t(im.rows) * size_t(im.cols), "pixel count");
  });
  expect_parsed_or_runtime_error([&] { (void)data::parse_idx_labels(bytes, "fuzz-labels.idx"); });
}

// llm-compressor recipe text (io/recipe.h). Its parser refuses bad input with
// std::invalid_argument (a usage error in the CLI), so this target also takes that as the
// expected answer. An accepted recipe is canonical and reads back equal from to_yaml; a failure
// there escapes both catches (outside the try) and counts as a bug.
inline void check_recipe(const io::PruningRecipe& r) {
  check(r.sparsity >= 0 && r.sparsity < 1, "sparsity in [0, 1)");
  check(r.mask_structure == "0:0" || r.sparsity > 0, "N:M sets sparsity N/M");
  const io::PruningRecipe back = io::parse_pruning_recipe(io::to_yaml(r), "fuzz/recipe.yaml (re-read)");
  check(back == r, "to_yaml round trip");
}
inline void parse_recipe(const uint8_t* data, size_t size) {
  check_recipe(io::parse_pruning_recipe(std::string(reinterpret_cast<const char*>(data), size), "fuzz/recipe.yaml"));
}
inline void recipe(const uint8_t* data, size_t size) {
  io::PruningRecipe r;
  try {
    r = io::parse_pruning_recipe(std::string(reinterpret_cast<const char*>(data), size), "fuzz/recipe.yaml");
  } catch (const std::invalid_argument&) {
    return;
  } catch (const std::runtime_error&) {
    return;
  }
  check_recipe(r);
}

}  // namespace ressa::fuzz
