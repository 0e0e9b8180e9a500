#!/usr/bin/python3
"""Independent reference for the LLaVA variants ressa reads (python3-torch from Debian, float64).

Writes tests/fixtures/llava_qwen2_siglip/{config.json, model.safetensors} and
tests/fixtures/llava_qwen2_siglip_golden.safetensors: a llava-interleave / onevision-style model
with random weights, written from the published architectures, not from ressa's C++:
- SigLIP vision tower: no class token, patch conv with bias, no pre-LayerNorm, gelu (tanh
  approximation), an image size that is not a multiple of the patch size (the conv drops the
  remainder), layer_norm_eps and hidden_act left to SiglipVisionConfig's defaults;
- "full" feature strategy from the last hidden state (vision_feature_layer -1);
- Qwen2 decoder: q/k/v projections with bias, o_proj without, an explicit head_dim that is not
  hidden_size / num_attention_heads, grouped KV heads, rms_norm_eps left to Qwen2Config's
  default (1e-6), embeddings tied to lm_head (the file holds no lm_head.weight);
- the transformers >= 4.52 key layout (model.language_model.*, model.vision_tower.*,
  model.multi_modal_projector.*) and float16 weights.
The reference computes on the float16 values widened to float64.
Run: /usr/bin/python3 tests/reference/llava_variants_reference.py
"""
import json, math, os, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
sys.path.insert(0, HERE)
from llava_reference import write_safetensors  # noqa: E402  (the safetensors writer only)

CFG = {
    "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
    "image_token_index": 5, "projector_hidden_act": "gelu",
    "vision_feature_layer": -1, "vision_feature_select_strategy": "full",
    "torch_dtype": "float16", "tie_word_embeddings": True,
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 40,
                      "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 19, "patch_size": 8,
                      "vision_use_head": False},
    "text_config": {"model_type": "qwen2", "vocab_size": 30, "hidden_size": 16, "intermediate_size": 24,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 6,
                    "max_position_embeddings": 64, "rope_theta": 1000000.0, "tie_word_embeddings": True,
                    "use_sliding_window": False, "torch_dtype": "float16"},
}
LN_EPS = 1e-6       # SiglipVisionConfig.layer_norm_eps default
RMS_EPS = 1e-6      # Qwen2Config.rms_norm_eps default
GREEDY_STEPS = 8    # new tokens of the greedy generation check
GRID = CFG["vision_config"]["image_size"] // CFG["vision_config"]["patch_size"]


def make_weights(g):
    v, t = CFG["vision_config"], CFG["text_config"]
    W = {}
    def r(*shape, s=0.3):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * s
    D, I, ps = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    vm = "vision_tower.vision_model."
    W[vm + "embeddings.patch_embedding.weight"] = r(D, 3, ps, ps, s=0.1)
    W[vm + "embeddings.patch_embedding.bias"] = r(D, s=0.1)
    W[vm + "embeddings.position_embedding.weight"] = r(GRID * GRID, D)
    W[vm + "post_layernorm.weight"] = 1 + r(D, s=0.1); W[vm + "post_layernorm.bias"] = r(D, s=0.1)
    for i in range(v["num_hidden_layers"]):
        p = vm + f"encoder.layers.{i}."
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            W[p + f"self_attn.{n}.weight"] = r(D, D); W[p + f"self_attn.{n}.bias"] = r(D, s=0.1)
        for ln in ["layer_norm1", "layer_norm2"]:
            W[p + ln + ".weight"] = 1 + r(D, s=0.1); W[p + ln + ".bias"] = r(D, s=0.1)
        W[p + "mlp.fc1.weight"] = r(I, D); W[p + "mlp.fc1.bias"] = r(I, s=0.1)
        W[p + "mlp.fc2.weight"] = r(D, I); W[p + "mlp.fc2.bias"] = r(D, s=0.1)
    H, TI, V = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    hd, nh, nkv = t["head_dim"], t["num_attention_heads"], t["num_key_value_heads"]
    W["multi_modal_projector.linear_1.weight"] = r(H, D); W["multi_modal_projector.linear_1.bias"] = r(H, s=0.1)
    W["multi_modal_projector.linear_2.weight"] = r(H, H); W["multi_modal_projector.linear_2.bias"] = r(H, s=0.1)
    lm = "language_model.model."
    W[lm + "embed_tokens.weight"] = r(V, H)
    for i in range(t["num_hidden_layers"]):
        p = lm + f"layers.{i}."
        W[p + "self_attn.q_proj.weight"] = r(nh * hd, H); W[p + "self_attn.q_proj.bias"] = r(nh * hd, s=0.1)
        W[p + "self_attn.k_proj.weight"] = r(nkv * hd, H); W[p + "self_attn.k_proj.bias"] = r(nkv * hd, s=0.1)
        W[p + "self_attn.v_proj.weight"] = r(nkv * hd, H); W[p + "self_attn.v_proj.bias"] = r(nkv * hd, s=0.1)
        W[p + "self_attn.o_proj.weight"] = r(H, nh * hd)
        W[p + "mlp.gate_proj.weight"] = r(TI, H); W[p + "mlp.up_proj.weight"] = r(TI, H)
        W[p + "mlp.down_proj.weight"] = r(H, TI)
        W[p + "input_layernorm.weight"] = 1 + r(H, s=0.1); W[p + "post_attention_layernorm.weight"] = 1 + r(H, s=0.1)
    W[lm + "norm.weight"] = 1 + r(H, s=0.1)
    # Stored as float16; the reference computes on exactly the stored values.
    return {k: w.half().double() for k, w in W.items()}


def file_name(module_name):
    """transformers >= 4.52 key layout."""
    for mod, f in [("language_model.model.", "model.language_model."), ("vision_tower.", "model.vision_tower."),
                   ("multi_modal_projector.", "model.multi_modal_projector.")]:
        if module_name.startswith(mod):
            return f + module_name[len(mod):]
    return module_name


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True); var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def vision_features(W, pixels):
    v = CFG["vision_config"]; vm = "vision_tower.vision_model."
    B, ps, D = pixels.shape[0], v["patch_size"], v["hidden_size"]
    patches = torch.nn.functional.conv2d(pixels, W[vm + "embeddings.patch_embedding.weight"],
                                         W[vm + "embeddings.patch_embedding.bias"], stride=ps)
    x = patches.flatten(2).transpose(1, 2) + W[vm + "embeddings.position_embedding.weight"]
    hidden = [x]
    nh = v["num_attention_heads"]; hd = D // nh
    for i in range(v["num_hidden_layers"]):
        p = vm + f"encoder.layers.{i}."
        lin = lambda z, n: z @ W[p + n + ".weight"].T + W[p + n + ".bias"]
        h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], LN_EPS)
        T = h.shape[1]
        q, k, vv = [lin(h, f"self_attn.{n}").view(B, T, nh, hd).transpose(1, 2) for n in ["q_proj", "k_proj", "v_proj"]]
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), -1) @ vv
        x = x + lin(a.transpose(1, 2).reshape(B, T, D), "self_attn.out_proj")
        h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], LN_EPS)
        x = x + lin(gelu_tanh(lin(h, "mlp.fc1")), "mlp.fc2")
        hidden.append(x)
    f = hidden[CFG["vision_feature_layer"]]  # "full": every token (SigLIP has no class token)
    f = f @ W["multi_modal_projector.linear_1.weight"].T + W["multi_modal_projector.linear_1.bias"]
    f = torch.nn.functional.gelu(f)
    return f @ W["multi_modal_projector.linear_2.weight"].T + W["multi_modal_projector.linear_2.bias"]


def rms(x, w):
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + RMS_EPS)


def qwen2_logits(W, emb, mask):
    t = CFG["text_config"]; B, T, H = emb.shape
    nh, nkv, hd = t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"]
    pos = (mask.cumsum(1) - 1).clamp(min=0).double()
    inv = 1.0 / (t["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos[..., None] * inv
    cos, sin = torch.cos(ang), torch.sin(ang)
    def rope(x):  # rotate pairs (i, i + hd/2)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        c, s = cos[:, None], sin[:, None]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))[None] & mask.bool()[:, None, :]
    x = emb
    for i in range(t["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        lin = lambda z, n: z @ W[p + n + ".weight"].T + W[p + n + ".bias"]
        h = rms(x, W[p + "input_layernorm.weight"])
        q = lin(h, "self_attn.q_proj").view(B, T, nh, hd).transpose(1, 2)
        k = lin(h, "self_attn.k_proj").view(B, T, nkv, hd).transpose(1, 2)
        v = lin(h, "self_attn.v_proj").view(B, T, nkv, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(nh // nkv, 1); v = v.repeat_interleave(nh // nkv, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        a = torch.softmax(s, -1).nan_to_num(0.0) @ v
        x = x + a.transpose(1, 2).reshape(B, T, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["language_model.model.norm.weight"])
    return x @ W["language_model.model.embed_tokens.weight"].T  # tied lm_head


def main():
    g = torch.Generator().manual_seed(4321)
    W = make_weights(g)
    d = os.path.join(FIX, "llava_qwen2_siglip")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), {file_name(k): v.half() for k, v in W.items()},
                      {"format": "pt"})
    v = CFG["vision_config"]; P = GRID * GRID
    B = 2
    pixels = torch.randn(B, 3, v["image_size"], v["image_size"], generator=g, dtype=torch.float64).float().double()
    text = [[1] + [5] * P + [7, 9, 11, 3], [0, 0, 1] + [5] * P + [8, 10]]
    ids = torch.tensor(text, dtype=torch.int64)
    mask = (torch.arange(ids.shape[1])[None] >= torch.tensor([[0], [2]])).long()
    emb = W["language_model.model.embed_tokens.weight"][ids]
    feats = vision_features(W, pixels)
    is_img = ids == CFG["image_token_index"]
    emb[is_img] = feats.reshape(-1, feats.shape[-1])
    logits = qwen2_logits(W, emb, mask)
    # Greedy generation from the first prompt (no padding): the full sequence is recomputed at
    # every step (no KV cache), as an independent check of ressa's cached decoding.
    seq = ids[:1].clone()
    greedy, margins = [], []
    for _ in range(GREEDY_STEPS):
        e = W["language_model.model.embed_tokens.weight"][seq]
        e[seq == CFG["image_token_index"]] = feats[:1].reshape(-1, feats.shape[-1])
        last = qwen2_logits(W, e, torch.ones_like(seq))[0, -1]
        top = torch.topk(last, 2).values
        margins.append(float(top[0] - top[1]))
        nxt = int(last.argmax())
        greedy.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    write_safetensors(os.path.join(FIX, "llava_qwen2_siglip_golden.safetensors"),
                      {"pixels": pixels.float(), "input_ids": ids, "attention_mask": mask,
                       "logits": logits.float(), "greedy_ids": torch.tensor(greedy, dtype=torch.int64)},
                      {"made_by": "tests/reference/llava_variants_reference.py"})
    print("greedy", greedy, "smallest top-2 margin", min(margins))
    print("logits", logits.shape, float(logits.abs().max()))


if __name__ == "__main__":
    main()
