"""A tiny BiomedCLIP-family model (timm ViT image tower + HF BERT text tower), random weights,
saved in the Hugging Face hub layout that ``local-dir:`` and the hub cache use (the
``tiny_model_dir`` fixture of ``tests/conftest.py`` builds one per session)."""

from __future__ import annotations

import json
from pathlib import Path

_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + [
        "breast",
        "mass",
        "calcification",
        "calcifications",
        "dense",
        "fatty",
        "heterogeneously",
        "extremely",
        "scattered",
        "left",
        "right",
        "the",
        "a",
        "of",
        "no",
        "birads",
        "assessment",
        "composition",
        "spiculated",
        "oval",
        "round",
        "irregular",
        "margins",
        "grouped",
        "pleomorphic",
        "acr",
        "negative",
        "benign",
        "suspicious",
    ]
    + [chr(c) for c in range(97, 123)]
    + [str(d) for d in range(10)]
)


def build_tiny_model(folder: Path, *, hub_text_name: str | None = None) -> Path:
    """Write a tiny random open_clip model to ``folder`` and return it.

    Args:
        folder: Where to write ``open_clip_config.json``, weights, tokenizer and BERT config.
        hub_text_name: Name the text tower by this hub id in the config (as BiomedCLIP's config
            does) instead of by the folder.
    """
    import torch
    from open_clip.model import CustomTextCLIP, set_model_preprocess_cfg
    from open_clip.push_to_hf_hub import save_for_hf
    from open_clip.tokenizer import HFTokenizer
    from transformers import BertConfig, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(_VOCAB), encoding="utf-8")
    BertConfig(
        vocab_size=len(_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=256,
    ).save_pretrained(folder)  # fmt: skip
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    text_cfg = {
        "hf_model_name": str(folder), "hf_tokenizer_name": str(folder), "hf_proj_type": "mlp",
        "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256,
    }  # fmt: skip
    vision_cfg = {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
                  "timm_pool": "", "timm_proj": "linear", "image_size": 224}  # fmt: skip
    torch.manual_seed(0)
    model = CustomTextCLIP(
        embed_dim=16, vision_cfg=vision_cfg, text_cfg=dict(text_cfg, hf_model_pretrained=False)
    )
    set_model_preprocess_cfg(model, {
        "size": 224, "mode": "RGB", "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic",
        "resize_mode": "shortest", "fill_color": 0,
    })  # fmt: skip
    tokenizer = HFTokenizer(str(folder), context_length=256)
    model_cfg = {"embed_dim": 16, "vision_cfg": vision_cfg, "text_cfg": text_cfg}
    save_for_hf(model, tokenizer, model_cfg, folder, safe_serialization=True)
    if hub_text_name:
        config = json.loads((folder / "open_clip_config.json").read_text(encoding="utf-8"))
        config["model_cfg"]["text_cfg"]["hf_model_name"] = hub_text_name
        config["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = hub_text_name
        (folder / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder
