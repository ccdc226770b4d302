"""Token healing (`dg_lsp.prompt.healing`) with the shipped default model's byte-level BPE
tokenizer (a real tokenizer, no model needed), and through the engine on a tiny random model."""

import json
import shutil

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from dg_lsp.engine.engine import Completion, Engine
from dg_lsp.errors import ModelLoadError
from dg_lsp.server.model_host import DEFAULT_MODEL_DIR
from dg_lsp.prompt import PromptBuilder, prompt_format_for
from dg_lsp.prompt.builder import Prompt
from dg_lsp.prompt.healing import TokenHealer


@pytest.fixture(scope="module")
def builder():
    tokenizer = Tokenizer.from_file(str(DEFAULT_MODEL_DIR / "tokenizer.json"))
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    fmt = prompt_format_for(tokenizer, DEFAULT_MODEL_DIR, (1,), config.get("bos_token_id"), {})
    return PromptBuilder(fmt, 512)


@pytest.fixture(scope="module")
def healer(builder):
    return TokenHealer(builder.format.tokenizer)


def _id(builder, text):
    [token] = builder.encode(text)
    return token


def test_the_word_at_the_cursor_is_rewritten_not_continued(builder, healer):
    prompt = builder.build("def read(path):\n    with open(path) as fh:\n        ret", "\n")
    assert builder.decode(prompt.segment("prefix")[-1:]) == "ret"
    healed, healing = healer.heal(prompt)
    assert healing.text == "ret"
    assert healed.ids == prompt.ids[:-1] and healed.spans["prefix"] == (prompt.spans["prefix"][0], len(prompt) - 1)
    assert _id(builder, "return") in healing.allowed and _id(builder, "ret") in healing.allowed
    assert all(builder.decode([token]).startswith("ret") for token in healing.allowed)
    # What is shown is what follows the cursor.
    assert builder.decode([_id(builder, "return"), *builder.encode(" x")], healing.text) == "urn x"
    assert builder.decode([], healing.text) == ""


def test_a_line_start_is_left_alone(builder, healer):
    """At column 0 or after the indentation the editor chose, healing would let the model doubt
    the line break and indentation: measured, it shows fewer right completions."""
    for prefix in ("def add(a, b):\n", "def add(a, b):\n    ", "x = 1\n\n", "x = 1\n\n    "):
        prompt = builder.build(prefix, "\n")
        assert builder.decode(prompt.segment("prefix")[-1:]).strip() == ""
        assert healer.heal(prompt) is None


def test_punctuation_and_spaces_inside_a_line_are_healed(builder, healer):
    for prefix, last in (("print(", "("), ("x = ", " "), ("    value = data.", ".")):
        healed = healer.heal(builder.build(prefix, "\n"))
        assert healed is not None and healed[1].text.endswith(last)


def test_nothing_is_healed_where_nothing_extends_the_last_token(builder, healer):
    assert healer.heal(builder.build("", "x = 1\n")) is None  # no prefix
    # A token no other token starts with: healing would only force it back.
    texts = healer._texts
    lone = next(t for t in texts if t.isidentifier() and len(t) > 3 and len(healer.extending(t)) == 1
                and builder.encode(t) == [texts.index(t)])
    assert healer.heal(builder.build("x = " + lone, "")) is None


def test_a_special_token_or_part_of_a_character_is_never_healed(healer):
    specials = Prompt((5, 3), {"prefix": (1, 2)})  # <|fim_middle|>-like special ids decode to ""
    assert healer._texts[3] == "" and healer.heal(specials) is None
    partial = next(i for i, t in enumerate(healer._texts) if "\ufffd" in t)
    assert healer.heal(Prompt((7, partial), {"prefix": (1, 2)})) is None


def test_dropping_a_token_shifts_the_spans_after_it():
    prompt = Prompt((1, 2, 3, 4, 5, 6), {"markers": (0, 1), "prefix": (1, 4), "suffix": (4, 6)}, "key")
    dropped = prompt.without(3)
    assert dropped.ids == (1, 2, 3, 5, 6) and dropped.cache_key == "key"
    assert dropped.spans == {"markers": (0, 1), "prefix": (1, 3), "suffix": (3, 5)}


def test_a_tokenizer_that_does_not_decode_token_by_token_is_not_healed():
    """WordPiece joins words with spaces: one token's text is not its part of the whole."""
    vocab = {"[UNK]": 0, "def": 1, "f": 2, "re": 3, "##turn": 4, "return": 5, "x": 6, ":": 7, "(": 8, ")": 9}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    healer = TokenHealer(tokenizer)
    assert not healer.works
    assert healer.heal(Prompt((1, 3), {"prefix": (0, 2)})) is None


# -- through the engine, on a tiny random model ----------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory, dense_dir):
    model = shutil.copytree(dense_dir, tmp_path_factory.mktemp("spm") / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"fim_order": "spm"}))
    return Engine.from_directory(model, progress=False)


PREFIX = "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    ret"


def test_every_row_starts_with_a_token_that_extends_the_cursors(engine):
    prompt = engine.prompts.build(PREFIX, "\n", key="heal")
    healed, healing = engine.healed(prompt)
    assert healing is not None and healing.text == engine.prompts.decode(prompt.segment("prefix")[-1:])
    generation = engine.generate(prompt, canvas_length=16, max_steps=3, seed=1, candidates=3)
    assert generation.healed == healing.text and generation.prompt_tokens == len(healed)
    for row in generation.rows:
        assert row and row[0] in healing.allowed
        assert engine.prompts.decode(row).startswith(healing.text)
    completion = Completion.decoded(generation, engine.prompts)
    assert completion.candidates == [engine.prompts.decode(row)[len(healing.text):] for row in generation.rows]


def test_a_draft_is_healed_with_the_prompt(engine):
    """A prompt-lookup draft continues the cursor: it is re-tokenized with the healed text in front."""
    prompt = engine.prompts.build(PREFIX, "\n", key="heal-draft")
    generation = engine.generate(prompt, canvas_length=16, max_steps=1, seed=1, draft="urn a\n")
    assert generation.rows[0][0] in engine.healed(prompt)[1].allowed


def test_healing_can_be_turned_off_and_the_prompt_is_left_alone(engine):
    prompt = engine.prompts.build(PREFIX, "\n", key="no-heal")
    engine.heal_tokens = False
    try:
        assert engine.healed(prompt) == (prompt, None)
        generation = engine.generate(prompt, canvas_length=16, max_steps=2, seed=1)
    finally:
        engine.heal_tokens = True
    assert generation.healed == "" and generation.prompt_tokens == len(prompt)


def test_the_first_token_mask_allows_exactly_the_extensions(engine):
    _, healing = engine.healed(engine.prompts.build(PREFIX, "\n"))
    mask = engine.first_token_mask(healing)
    assert mask.dtype == torch.bool and mask.sum() == len(healing.allowed)
    assert mask.nonzero().flatten().tolist() == sorted(healing.allowed)
    assert engine.first_token_mask(None) is None


def test_a_model_directory_can_turn_healing_off(tmp_path, dense_dir):
    model = shutil.copytree(dense_dir, tmp_path / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"token_healing": False}))
    assert not Engine.from_directory(model, progress=False).heal_tokens
    (model / "dg_lsp.json").write_text(json.dumps({"token_healing": "no"}))
    with pytest.raises(ModelLoadError, match="token_healing must be true or false"):
        Engine.from_directory(model, progress=False)
