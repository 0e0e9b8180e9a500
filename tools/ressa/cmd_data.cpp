// `ressa data`: writes the ShapesVQA (default) or FashionVQA dataset directory.
#include <filesystem>

#include "common.h"
#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/data/fashion.h"
#include "ressa/data/shapes.h"

namespace ressa::cli {

void register_data(CLI::App& app) {
  struct Flags {
    std::string out, task = "shapes";
    std::string fashion_dir = data::FashionOptions{}.source_dir;
    data::ShapesOptions shapes;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("data", "write a VQA dataset directory (train/val/test.jsonl + images/)");
  cmd->add_option("--out", f->out, "dataset directory to write")->required();
  cmd->add_option("--task", f->task, "shapes (ShapesVQA) or fashion (FashionVQA; needs dataset-fashion-mnist)")
      ->check(CLI::IsMember({"shapes", "fashion"}));
  cmd->add_option("--fashion-dir", f->fashion_dir, "folder with the Fashion-MNIST IDX files (--task fashion)");
  cmd->add_option("--seed", f->shapes.seed, "generator seed");
  cmd->add_option("--train", f->shapes.train, "training examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--val", f->shapes.val, "validation examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--test", f->shapes.test, "test examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--train-questions", f->shapes.train_questions,
                  "extra questions per training image (other families, answers from the scene; fashion: at most 5)")
      ->check(CLI::Range(0, 6))->capture_default_str();
  cmd->add_option("--image-size", f->shapes.image_size, "image side in pixels")->check(CLI::Range(32, 1024));
  cmd->add_option("--threads", f->shapes.threads, "worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([f] {
    check_output_path("--out", f->out, OutputKind::Directory,
                      {{"--fashion-dir", f->task == "fashion" ? f->fashion_dir : std::string()}});
    write_output_dir(f->out, [&](const std::string& staging) {  // nothing is left at --out on failure
      if (f->task == "fashion") {
        data::FashionOptions o;
        o.seed = f->shapes.seed;
        o.train = f->shapes.train;
        o.val = f->shapes.val;
        o.test = f->shapes.test;
        o.image_size = f->shapes.image_size;
        o.threads = f->shapes.threads;
        o.train_questions = f->shapes.train_questions;
        o.source_dir = f->fashion_dir;
        data::generate_fashion(staging, o);
      } else {
        data::generate_shapes(staging, f->shapes);
      }
    });
    info(std::string("wrote ") + (f->task == "fashion" ? "FashionVQA" : "ShapesVQA") + " to " + f->out + " (train " + std::to_string(f->shapes.train) + ", val " +
         std::to_string(f->shapes.val) + ", test " + std::to_string(f->shapes.test) + ", seed " +
         std::to_string(f->shapes.seed) + ")");
  });
}

}  // namespace ressa::cli
