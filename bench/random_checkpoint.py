#!/usr/bin/python3
"""A llava-hf model directory with random fp16 weights, shaped by a real config.json (no download).

Usage: bench/random_checkpoint.py CONFIG.json OUT_DIR [--shard-gb 2]

Writes OUT_DIR/config.json (the given config, with image_token_index set to the <image> id of the
tokenizer below), model-0000i-of-0000n.safetensors shards of at most --shard-gb GB with
model.safetensors.index.json, in the llava-hf pre-4.52 key layout (language_model.model.*,
vision_tower.vision_model.*, multi_modal_projector.*), and the files a llava-hf repository carries:
tokenizer.json (phi-3's SentencePiece-style BPE from tests/fixtures/tokenizers with <image> and <pad>
added: the 32064-entry vocabulary llava-1.5 uses), tokenizer_config.json, the llava-1.5 chat
template, a CLIPImageProcessor preprocessor_config.json at the vision tower's image size, and
generation_config.json. Sizes the text config leaves out take LlamaConfig's defaults (hidden 4096,
intermediate 11008, 32 layers, 32 heads), as transformers does. Weights are N(0, 0.02) (norm weights
1), one tensor at a time, so the writer holds at most one shard in memory. For benchmarks only:
the model answers nonsense.
"""
import argparse, json, os, shutil, struct, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "fixtures")
IMAGE_ID, PAD_ID = 32011, 32012  # phi-3's vocabulary ends at 32010


def tensor_shapes(cfg):
    v, t = cfg["vision_config"], cfg["text_config"]
    D, I = v.get("hidden_size", 768), v.get("intermediate_size", 3072)
    P = (v.get("image_size", 224) // v.get("patch_size", 32)) ** 2
    vm = "vision_tower.vision_model."
    yield vm + "embeddings.class_embedding", (D,)
    yield vm + "embeddings.patch_embedding.weight", (D, 3, v.get("patch_size", 32), v.get("patch_size", 32))
    yield vm + "embeddings.position_embedding.weight", (P + 1, D)
    for ln in ["pre_layrnorm", "post_layernorm"]:
        yield vm + ln + ".weight", (D,)
        yield vm + ln + ".bias", (D,)
    for i in range(v.get("num_hidden_layers", 12)):
        p = vm + f"encoder.layers.{i}."
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            yield p + f"self_attn.{n}.weight", (D, D)
            yield p + f"self_attn.{n}.bias", (D,)
        for ln in ["layer_norm1", "layer_norm2"]:
            yield p + ln + ".weight", (D,)
            yield p + ln + ".bias", (D,)
        yield p + "mlp.fc1.weight", (I, D)
        yield p + "mlp.fc1.bias", (I,)
        yield p + "mlp.fc2.weight", (D, I)
        yield p + "mlp.fc2.bias", (D,)
    H, TI = t.get("hidden_size", 4096), t.get("intermediate_size", 11008)
    V, heads = t.get("vocab_size", cfg.get("vocab_size", 32000)), t.get("num_attention_heads", 32)
    hd = t.get("head_dim", H // heads)
    kv = t.get("num_key_value_heads", heads) * hd
    yield "multi_modal_projector.linear_1.weight", (H, D)
    yield "multi_modal_projector.linear_1.bias", (H,)
    yield "multi_modal_projector.linear_2.weight", (H, H)
    yield "multi_modal_projector.linear_2.bias", (H,)
    lm = "language_model.model."
    yield lm + "embed_tokens.weight", (V, H)
    for i in range(t.get("num_hidden_layers", 32)):
        p = lm + f"layers.{i}."
        yield p + "self_attn.q_proj.weight", (heads * hd, H)
        yield p + "self_attn.k_proj.weight", (kv, H)
        yield p + "self_attn.v_proj.weight", (kv, H)
        yield p + "self_attn.o_proj.weight", (H, heads * hd)
        yield p + "mlp.gate_proj.weight", (TI, H)
        yield p + "mlp.up_proj.weight", (TI, H)
        yield p + "mlp.down_proj.weight", (H, TI)
        yield p + "input_layernorm.weight", (H,)
        yield p + "post_attention_layernorm.weight", (H,)
    yield lm + "norm.weight", (H,)
    if not cfg.get("tie_word_embeddings", t.get("tie_word_embeddings", False)):
        yield "language_model.lm_head.weight", (V, H)


def write_shard(path, tensors):
    header, offset = {}, 0
    for name, t in tensors:
        n = t.numel() * 2
        header[name] = {"dtype": "F16", "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, t in tensors:
            f.write(t.contiguous().view(torch.int16).numpy().tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--shard-gb", type=float, default=2.0)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    cfg["image_token_index"], cfg["pad_token_id"], cfg["torch_dtype"] = IMAGE_ID, PAD_ID, "float16"
    cfg.setdefault("text_config", {})["torch_dtype"] = "float16"
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    shapes = list(tensor_shapes(cfg))
    limit = a.shard_gb * 1e9
    shards, cur, size = [], [], 0
    for name, shape in shapes:
        n = 2
        for s in shape:
            n *= s
        if cur and size + n > limit:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += n
    shards.append(cur)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = []
        for name, shape in shard:
            if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name:
                t = torch.ones(shape, dtype=torch.float16) if name.endswith(".weight") else torch.zeros(shape, dtype=torch.float16)
            else:
                t = (torch.randn(shape, generator=g) * 0.02).half()
            tensors.append((name, t))
            weight_map[name] = fname
            total += t.numel() * 2
        write_shard(os.path.join(a.out, fname), tensors)
        print(f"wrote {fname} ({sum(t.numel() for _, t in tensors) * 2 / 1e9:.2f} GB)", file=sys.stderr)
        del tensors
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=2)
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    tok = json.load(open(os.path.join(FIX, "tokenizers", "phi3", "tokenizer.json")))
    for i, c in [(IMAGE_ID, "<image>"), (PAD_ID, "<pad>")]:
        tok["added_tokens"].append({"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                                    "normalized": False, "special": True})
    json.dump(tok, open(os.path.join(a.out, "tokenizer.json"), "w"))
    shutil.copy(os.path.join(FIX, "tokenizers", "phi3", "tokenizer_config.json"), a.out)
    tmpl = open(os.path.join(FIX, "chat_templates", "llava_1_5.jinja")).read()
    json.dump({"chat_template": tmpl}, open(os.path.join(a.out, "chat_template.json"), "w"))
    S = cfg["vision_config"].get("image_size", 224)
    json.dump({"crop_size": {"height": S, "width": S}, "do_center_crop": True, "do_convert_rgb": True,
               "do_normalize": True, "do_rescale": True, "do_resize": True,
               "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
               "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
               "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": S}},
              open(os.path.join(a.out, "preprocessor_config.json"), "w"), indent=2)
    json.dump({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": PAD_ID},
              open(os.path.join(a.out, "generation_config.json"), "w"))
    print(f"{a.out}: {len(shapes)} tensors, {total / 1e9:.2f} GB in {len(shards)} shards", file=sys.stderr)


if __name__ == "__main__":
    main()
