#!/usr/bin/python3
"""A tiny checkpoint in the exact layout of llava-hf/llava-1.5-7b-hf (python3-torch from Debian).

Writes tests/fixtures/llava15_layout/{config.json, model.safetensors}: config.json with the
fields and omissions of the real llava-1.5 config (text_config without hidden_act, rope_theta,
tie_word_embeddings; vision_config without hidden_act or layer_norm_eps, so Hugging Face's
LlamaConfig / CLIPVisionConfig defaults apply; fields ressa does not own such as ignore_index,
pad_token_id, projection_dim and transformers_version) but tiny sizes, and random float16
weights under the pre-4.52 key names (language_model.model.*, vision_tower.*). The vocabulary
(32064, image token 32011, pad 32012) matches the phi-3 tokenizer of tests/fixtures/tokenizers
with llava-hf's <image> and <pad> added, which tests/torch/test_cli_llava_hf.cpp assembles
beside it with the llava-1.5 chat template and a CLIP image processor.
Weights come from llava_reference.make_weights (the same independent writer as llava_tiny).
Run: /usr/bin/python3 tests/reference/llava15_layout_reference.py
"""
import json, os, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llava_reference as ref  # noqa: E402

CFG = {
    "architectures": ["LlavaForConditionalGeneration"],
    "ignore_index": -100,
    "image_token_index": 32011,
    "model_type": "llava",
    "pad_token_id": 32012,
    "projector_hidden_act": "gelu",
    "text_config": {
        "_name_or_path": "lmsys/vicuna-7b-v1.5",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "rms_norm_eps": 1e-05,
        "torch_dtype": "float16",
        "vocab_size": 32064,
    },
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.36.0.dev0",
    "vision_config": {
        "hidden_size": 16, "image_size": 28, "intermediate_size": 32,
        "model_type": "clip_vision_model",
        "num_attention_heads": 2, "num_hidden_layers": 3, "patch_size": 14,
        "projection_dim": 768, "vocab_size": 32000,
    },
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "vocab_size": 32064,
}


def main():
    ref.CFG = CFG
    g = torch.Generator().manual_seed(1515)
    W = ref.make_weights(g)
    d = os.path.join(ref.FIX, "llava15_layout")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    ref.write_safetensors(os.path.join(d, "model.safetensors"), {k: v.half() for k, v in W.items()},
                          {"format": "pt"})
    print("wrote", d, sum(v.numel() for v in W.values()), "parameters")


if __name__ == "__main__":
    main()
