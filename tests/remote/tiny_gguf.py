"""A tiny random Qwen2 code model in GGUF, with Qwen2.5-Coder's FIM tokens, for a real llama.cpp server.

The remote-backend tests need a model that a real OpenAI-compatible server (llama-cpp-python,
llama.cpp's llama-server) loads and answers with. No model may be downloaded, so the tests make
one: a random `Qwen2ForCausalLM` saved by transformers (safetensors and tokenizer.json, as a hub
checkpoint is laid out), then converted to GGUF with the `gguf` package. The converter is ours,
and short, because llama.cpp's `convert_hf_to_gguf.py` ships only in its source tree, not in any
installed package.

The GGUF declares the FIM token ids (`tokenizer.ggml.fim_pre_token_id` and the rest): llama.cpp's
`/infill` answers 501 without them, and llama-cpp-python's `suffix` support reads them too. The
answers are junk text from random weights: the model tests the wire, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.tiny_models import SAMPLE_CODE

# Qwen2.5-Coder's special tokens (the FIM ones, the end of text and the chat markers), first, so
# their ids are small and fixed whatever the trained merges are.
ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"
REPO_NAME, FILE_SEP = "<|repo_name|>", "<|file_sep|>"
SPECIAL_TOKENS = [ENDOFTEXT, "<|im_start|>", "<|im_end|>", FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD,
                  REPO_NAME, FILE_SEP]
VOCAB = 400
CONTEXT_LENGTH = 2048


def build_qwen2_checkpoint(directory: Path, seed: int = 0) -> Path:
    """Save a random two-layer Qwen2ForCausalLM and its byte-level BPE tokenizer into `directory`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([SAMPLE_CODE] * 20, trainer=trainer)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=ENDOFTEXT, pad_token=ENDOFTEXT,
                            additional_special_tokens=SPECIAL_TOKENS[1:]).save_pretrained(directory)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT_LENGTH,
        tie_word_embeddings=True, eos_token_id=tokenizer.token_to_id(ENDOFTEXT),
        bos_token_id=tokenizer.token_to_id(ENDOFTEXT),
    )
    model = Qwen2ForCausalLM(config)
    _favour_printable_tokens(model, tokenizer)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def _favour_printable_tokens(model, tokenizer) -> None:
    """Give the printable tokens' embedding rows (tied to the output layer) a large norm.

    At the default initialisation the logits are nearly uniform and the greedy pick is as likely
    a lone non-ASCII byte (which decodes to nothing) or an end-of-text token as visible text;
    with these rows the random model writes visible junk, so the tests can see its text."""
    import torch

    printable = [token_id for token_id in range(tokenizer.get_vocab_size())
                 if token_id >= len(SPECIAL_TOKENS) and _is_visible(tokenizer.decode([token_id]))]
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[printable] = torch.randn(len(printable), embedding.shape[1])


def _is_visible(text: str) -> bool:
    return bool(text) and "\ufffd" not in text and (text.isprintable() or text.isspace())


def convert_to_gguf(checkpoint: Path, output: Path) -> Path:
    """Write `checkpoint` (a Qwen2 directory as saved above) as an F32 GGUF file at `output`."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text(encoding="utf-8"))
    arch = gguf.MODEL_ARCH.QWEN2
    writer = gguf.GGUFWriter(output, gguf.MODEL_ARCH_NAMES[arch])

    writer.add_name("dg-lsp tiny random qwen2")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(float((config.get("rope_parameters") or config).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])

    _add_tokenizer(writer, tokenizer, config["vocab_size"])

    names = gguf.TensorNameMap(arch, config["num_hidden_layers"])
    for hf_name, tensor in load_file(checkpoint / "model.safetensors").items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"no GGUF name for checkpoint tensor {hf_name!r}")
        writer.add_tensor(name, np.ascontiguousarray(tensor, dtype=np.float32))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return output


def _add_tokenizer(writer, tokenizer: dict, vocab_size: int) -> None:
    """GPT-2-style byte-level BPE metadata, the special tokens marked as control tokens, and
    the FIM ids llama.cpp's /infill and llama-cpp-python's `suffix` read."""
    import gguf

    ids = dict(tokenizer["model"]["vocab"])
    ids.update({added["content"]: added["id"] for added in tokenizer["added_tokens"]})
    tokens = [""] * vocab_size
    for text, token_id in ids.items():
        tokens[token_id] = text
    if "" in tokens:
        raise ValueError("the tokenizer's ids are not contiguous")
    special = set(SPECIAL_TOKENS)
    types = [gguf.TokenType.CONTROL if text in special else gguf.TokenType.NORMAL for text in tokens]
    merges = [" ".join(pair) if isinstance(pair, list) else pair for pair in tokenizer["model"]["merges"]]

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(ids[ENDOFTEXT])
    writer.add_bos_token_id(ids[ENDOFTEXT])
    writer.add_pad_token_id(ids[ENDOFTEXT])
    writer.add_add_bos_token(False)
    # Byte-level BPE adds no leading space; llama-cpp-python assumes one (and strips two suffix
    # tokens for it) when the key is absent.
    writer.add_add_space_prefix(False)
    fim_keys = {gguf.Keys.Tokenizer.FIM_PRE_ID: FIM_PREFIX, gguf.Keys.Tokenizer.FIM_SUF_ID: FIM_SUFFIX,
                gguf.Keys.Tokenizer.FIM_MID_ID: FIM_MIDDLE, gguf.Keys.Tokenizer.FIM_PAD_ID: FIM_PAD,
                gguf.Keys.Tokenizer.FIM_REP_ID: REPO_NAME, gguf.Keys.Tokenizer.FIM_SEP_ID: FILE_SEP}
    for key, text in fim_keys.items():
        writer.add_uint32(key, ids[text])


def build_tiny_gguf(directory: Path, seed: int = 0) -> Path:
    """The tiny FIM-capable GGUF model, built in `directory` (a checkpoint folder beside it)."""
    checkpoint = build_qwen2_checkpoint(directory / "qwen2-checkpoint", seed=seed)
    return convert_to_gguf(checkpoint, directory / "tiny-qwen2-fim.gguf")
