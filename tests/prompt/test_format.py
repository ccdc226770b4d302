"""The prompt format comes from the model directory, never from hard-coded ids; the builder lays
prompts out in it."""

import json
import shutil

import pytest

from dg_lsp.prompt import PromptBuilder, prompt_format_for
from dg_lsp.model.loader import load_model

from ..tiny_models import build_tokenizer


def fmt_for(directory):
    loaded = load_model(directory, progress=False)
    return prompt_format_for(loaded.tokenizer, directory, loaded.sampler_defaults.eos_token_ids,
                             loaded.config.bos_token_id, loaded.tokenizer_config)


def build(fmt, prefix, suffix, context=""):
    return list(PromptBuilder(fmt, 2048).build(prefix, suffix, context).ids)


def test_fim_tokens_give_a_psm_prompt(dense_dir):
    fmt = fmt_for(dense_dir)
    tok = fmt.tokenizer
    pre, suf, mid = (tok.token_to_id(t) for t in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    prompt = build(fmt, "def f(x):\n    return ", "\n\nprint(f(2))\n")
    assert fmt.kind == "fim"
    assert prompt[:2] == [tok.token_to_id("<bos>"), pre] and prompt[-1] == mid
    assert tok.decode(prompt) == "def f(x):\n    return \n\nprint(f(2))\n"
    assert prompt.index(suf) == 2 + len(tok.encode("def f(x):\n    return ").ids)
    assert {1, tok.token_to_id("<|file_separator|>")} <= set(fmt.stop_token_ids)


def test_spm_order_ends_with_the_prefix(tmp_path, dense_dir):
    model = shutil.copytree(dense_dir, tmp_path / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"fim_order": "spm"}))
    fmt = fmt_for(model)
    prompt = build(fmt, "x = 1\ny = ", "\nz = 3\n")
    prefix_ids = fmt.tokenizer.encode("x = 1\ny = ").ids
    assert prompt[-len(prefix_ids):] == prefix_ids
    # Typing at the cursor only appends to the prompt (up to the last token's merge).
    longer = build(fmt, "x = 1\ny = 4", "\nz = 3\n")
    assert longer[: len(prompt) - 1] == prompt[:-1]


def test_without_fim_tokens_the_chat_template_is_used(tmp_path, dense_dir):
    model = shutil.copytree(dense_dir, tmp_path / "m")
    build_tokenizer(model / "tokenizer.json", with_fim=False)
    template = "{{ bos_token }}{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<model>"
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "bos_token": "<bos>"}))
    fmt = fmt_for(model)
    assert fmt.kind == "instruction"
    text = fmt.tokenizer.decode(build(fmt, "a = ", "\nprint(a)\n"), skip_special_tokens=False)
    # The user's turn holds the suffix and the instruction; the reply starts with the prefix.
    assert text.startswith("<bos><user>The code after the gap:\n\nprint(a)\n")
    assert text.endswith("</user><model>a = ")


def test_bad_fim_order_is_a_clear_error(tmp_path, dense_dir):
    from dg_lsp.errors import ModelLoadError

    model = shutil.copytree(dense_dir, tmp_path / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"fim_order": "middle-out"}))
    with pytest.raises(ModelLoadError, match="fim_order"):
        fmt_for(model)


def test_the_engine_keeps_prompts_within_the_trained_context(tmp_path, dense_dir):
    from dg_lsp.engine.engine import Engine

    assert Engine(load_model(dense_dir, progress=False), context_tokens=2048).context_tokens == 2048  # nothing recorded
    model = shutil.copytree(dense_dir, tmp_path / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"context_tokens": 96}))
    engine = Engine(load_model(model, progress=False), context_tokens=2048)
    assert engine.trained_context_tokens == 96 and engine.context_tokens == 96
    assert Engine(load_model(model, progress=False), context_tokens=80).context_tokens == 80  # a smaller budget stays
    completion = engine.infill("x = 1\n" * 400, "y = 2\n" * 400, canvas_length=16, max_steps=1)
    assert completion.prompt_tokens <= 96  # the FIM markers and BOS count against the budget


@pytest.mark.parametrize("value", [8, "256", 12.5, True])
def test_a_bad_trained_context_is_a_clear_error(tmp_path, dense_dir, value):
    from dg_lsp.engine.engine import Engine
    from dg_lsp.errors import ModelLoadError

    model = shutil.copytree(dense_dir, tmp_path / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"context_tokens": value}))
    with pytest.raises(ModelLoadError, match="context_tokens"):
        Engine(load_model(model, progress=False))


def test_deepseek_coders_fim_tokens_with_full_width_bars_give_a_fim_prompt(tmp_path, dense_dir):
    """DeepSeek-Coder spells its markers with U+FF5C (｜) and U+2581 (▁), not ASCII bars."""
    from tokenizers import Tokenizer

    model = shutil.copytree(dense_dir, tmp_path / "m")
    build_tokenizer(model / "tokenizer.json", with_fim=False)
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    markers = ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"]
    tokenizer.add_special_tokens(markers)
    tokenizer.save(str(model / "tokenizer.json"))
    fmt = fmt_for(model)
    assert fmt.kind == "fim" and fmt.fim_ids == tuple(tokenizer.token_to_id(m) for m in markers)
