#!/usr/bin/python3
"""Independent reference for ressa's LLaVA forward pass (python3-torch from Debian, float64).

Writes tests/fixtures/llava_tiny/{config.json, model.safetensors} (random weights in the
Hugging Face llava-hf layout) and tests/fixtures/llava_tiny_golden.safetensors with fixed inputs
and the logits computed here, written from the published architectures (CLIP ViT, LLaVA
projector, Llama decoder), not from ressa's C++. Run: /usr/bin/python3 tests/reference/llava_reference.py
"""
import json, math, os, struct
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")

CFG = {
    "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
    "image_token_index": 4, "projector_hidden_act": "gelu",
    "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
    "vision_config": {"model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                      "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 16, "patch_size": 8,
                      "num_channels": 3, "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu"},
    "text_config": {"model_type": "llama", "vocab_size": 24, "hidden_size": 16, "intermediate_size": 24,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                    "tie_word_embeddings": False, "hidden_act": "silu"},
}


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format by hand: u64 header length, JSON header, raw little-endian data."""
    names = list(tensors)
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for n in names:
        t = tensors[n].contiguous()
        dt = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.uint8: "U8"}[t.dtype]
        b = t.numpy().tobytes()
        header[n] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_weights(g):
    v, t = CFG["vision_config"], CFG["text_config"]
    W = {}
    def r(*shape, s=0.3):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * s)
    D, I, P = v["hidden_size"], v["intermediate_size"], (v["image_size"] // v["patch_size"]) ** 2
    vm = "vision_tower.vision_model."
    W[vm + "embeddings.class_embedding"] = r(D)
    W[vm + "embeddings.patch_embedding.weight"] = r(D, 3, v["patch_size"], v["patch_size"], s=0.1)
    W[vm + "embeddings.position_embedding.weight"] = r(P + 1, D)
    for ln in ["pre_layrnorm", "post_layernorm"]:
        W[vm + ln + ".weight"] = 1 + r(D, s=0.1); W[vm + ln + ".bias"] = r(D, s=0.1)
    for i in range(v["num_hidden_layers"]):
        p = vm + f"encoder.layers.{i}."
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            W[p + f"self_attn.{n}.weight"] = r(D, D); W[p + f"self_attn.{n}.bias"] = r(D, s=0.1)
        for ln in ["layer_norm1", "layer_norm2"]:
            W[p + ln + ".weight"] = 1 + r(D, s=0.1); W[p + ln + ".bias"] = r(D, s=0.1)
        W[p + "mlp.fc1.weight"] = r(I, D); W[p + "mlp.fc1.bias"] = r(I, s=0.1)
        W[p + "mlp.fc2.weight"] = r(D, I); W[p + "mlp.fc2.bias"] = r(D, s=0.1)
    H, TI, V = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    hd = H // t["num_attention_heads"]; kv = t["num_key_value_heads"] * hd
    W["multi_modal_projector.linear_1.weight"] = r(H, D); W["multi_modal_projector.linear_1.bias"] = r(H, s=0.1)
    W["multi_modal_projector.linear_2.weight"] = r(H, H); W["multi_modal_projector.linear_2.bias"] = r(H, s=0.1)
    lm = "language_model.model."
    W[lm + "embed_tokens.weight"] = r(V, H)
    for i in range(t["num_hidden_layers"]):
        p = lm + f"layers.{i}."
        W[p + "self_attn.q_proj.weight"] = r(H, H); W[p + "self_attn.k_proj.weight"] = r(kv, H)
        W[p + "self_attn.v_proj.weight"] = r(kv, H); W[p + "self_attn.o_proj.weight"] = r(H, H)
        W[p + "mlp.gate_proj.weight"] = r(TI, H); W[p + "mlp.up_proj.weight"] = r(TI, H)
        W[p + "mlp.down_proj.weight"] = r(H, TI)
        W[p + "input_layernorm.weight"] = 1 + r(H, s=0.1); W[p + "post_attention_layernorm.weight"] = 1 + r(H, s=0.1)
    W[lm + "norm.weight"] = 1 + r(H, s=0.1)
    W["language_model.lm_head.weight"] = r(V, H)
    # Round to float32 first so the reference computes on exactly the stored values.
    return {k: w.float().double() for k, w in W.items()}


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True); var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def vision_features(W, pixels):
    v = CFG["vision_config"]; vm = "vision_tower.vision_model."
    B, ps, D = pixels.shape[0], v["patch_size"], v["hidden_size"]
    patches = torch.nn.functional.conv2d(pixels, W[vm + "embeddings.patch_embedding.weight"], stride=ps)
    x = patches.flatten(2).transpose(1, 2)
    x = torch.cat([W[vm + "embeddings.class_embedding"].expand(B, 1, D), x], 1)
    x = x + W[vm + "embeddings.position_embedding.weight"]
    x = layer_norm(x, W[vm + "pre_layrnorm.weight"], W[vm + "pre_layrnorm.bias"], v["layer_norm_eps"])
    hidden = [x]
    nh = v["num_attention_heads"]; hd = D // nh
    for i in range(v["num_hidden_layers"]):
        p = vm + f"encoder.layers.{i}."
        lin = lambda z, n: z @ W[p + n + ".weight"].T + W[p + n + ".bias"]
        h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], v["layer_norm_eps"])
        T = h.shape[1]
        q, k, vv = [lin(h, f"self_attn.{n}").view(B, T, nh, hd).transpose(1, 2) for n in ["q_proj", "k_proj", "v_proj"]]
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), -1) @ vv
        x = x + lin(a.transpose(1, 2).reshape(B, T, D), "self_attn.out_proj")
        h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], v["layer_norm_eps"])
        h = lin(h, "mlp.fc1"); h = h * torch.sigmoid(1.702 * h)
        x = x + lin(h, "mlp.fc2")
        hidden.append(x)
    f = hidden[CFG["vision_feature_layer"]][:, 1:]  # "default": drop CLS
    f = f @ W["multi_modal_projector.linear_1.weight"].T + W["multi_modal_projector.linear_1.bias"]
    f = torch.nn.functional.gelu(f)
    return f @ W["multi_modal_projector.linear_2.weight"].T + W["multi_modal_projector.linear_2.bias"]


def rms(x, w, eps):
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def llama_logits(W, emb, mask):
    t = CFG["text_config"]; B, T, H = emb.shape
    nh, nkv = t["num_attention_heads"], t["num_key_value_heads"]; hd = H // nh
    pos = (mask.cumsum(1) - 1).clamp(min=0).double()
    inv = 1.0 / (t["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos[..., None] * inv  # [B,T,hd/2]
    cos, sin = torch.cos(ang), torch.sin(ang)
    def rope(x):  # x [B,h,T,hd], rotate pairs (i, i+hd/2)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        c, s = cos[:, None], sin[:, None]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))[None] & mask.bool()[:, None, :]
    x = emb
    for i in range(t["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        h = rms(x, W[p + "input_layernorm.weight"], t["rms_norm_eps"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, nh, hd).transpose(1, 2)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(nh // nkv, 1); v = v.repeat_interleave(nh // nkv, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        a = torch.softmax(s, -1).nan_to_num(0.0) @ v  # fully masked (padding) rows -> 0
        x = x + a.transpose(1, 2).reshape(B, T, H) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"], t["rms_norm_eps"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["language_model.model.norm.weight"], t["rms_norm_eps"])
    return x @ W["language_model.lm_head.weight"].T


def main():
    g = torch.Generator().manual_seed(1234)
    W = make_weights(g)
    d = os.path.join(FIX, "llava_tiny")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), {k: v.float() for k, v in W.items()}, {"format": "pt"})
    v = CFG["vision_config"]; P = (v["image_size"] // v["patch_size"]) ** 2
    B = 2
    pixels = torch.randn(B, 3, v["image_size"], v["image_size"], generator=g, dtype=torch.float64).float().double()
    # Row 0: full length. Row 1: two left-padding positions (mask 0), as in batched generation.
    text = [[2] + [4] * P + [7, 9, 11, 3], [0, 0, 2] + [4] * P + [8, 10]]
    ids = torch.tensor(text, dtype=torch.int64)
    mask = (torch.arange(ids.shape[1])[None] >= torch.tensor([[0], [2]])).long()
    emb = W["language_model.model.embed_tokens.weight"][ids]
    feats = vision_features(W, pixels)
    is_img = ids == CFG["image_token_index"]
    emb[is_img] = feats.reshape(-1, feats.shape[-1])
    logits = llama_logits(W, emb, mask)
    write_safetensors(os.path.join(FIX, "llava_tiny_golden.safetensors"),
                      {"pixels": pixels.float(), "input_ids": ids, "attention_mask": mask,
                       "logits": logits.float()}, {"made_by": "tests/reference/llava_reference.py"})
    print("logits", logits.shape, float(logits.abs().max()))


if __name__ == "__main__":
    main()
