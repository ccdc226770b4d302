"""The prompt builder: one budget over every segment, stable cuts, and layouts that keep the
prompt cache warm while the user types (FIM in SPM order, and the instruction prompt)."""

import json
import shutil

import pytest

from dg_lsp.engine.engine import Engine
from dg_lsp.model.loader import load_model
from dg_lsp.prompt import PromptBuilder

from ..tiny_models import build_tokenizer

SNIPPET = "".join(f"def helper_{i}(value):\n    return value * {i}\n\n" for i in range(200))  # a 200-function snippet
PREFIX = "".join(f"total_{i} = compute({i})\n" for i in range(300)) + "def fibonacci(n):\n    a, b = 0, 1\n    "
SUFFIX = "\n    return a\n" + "".join(f"print(fibonacci({i}))\n" for i in range(300))


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory, dense_dir):
    model = shutil.copytree(dense_dir, tmp_path_factory.mktemp("spm") / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"fim_order": "spm"}))
    return model


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory, dense_dir):
    """No FIM tokens, a chat template: the instruction prompt (as the real DiffusionGemma's)."""
    model = shutil.copytree(dense_dir, tmp_path_factory.mktemp("chat") / "m")
    build_tokenizer(model / "tokenizer.json", with_fim=False)
    template = "{{ bos_token }}{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<model>"
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "bos_token": "<bos>"}))
    return model


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory, dense_dir):
    """No FIM tokens and no chat template: the instruction prompt as plain text."""
    model = shutil.copytree(dense_dir, tmp_path_factory.mktemp("plain") / "m")
    build_tokenizer(model / "tokenizer.json", with_fim=False)
    return model


@pytest.fixture(scope="module", params=["psm", "spm", "chat", "plain"])
def engine(request, dense_dir, spm_dir, chat_dir, plain_dir):
    directory = {"psm": dense_dir, "spm": spm_dir, "chat": chat_dir, "plain": plain_dir}[request.param]
    return Engine(load_model(directory, progress=False), context_tokens=BUDGET)


BUDGET = 512


def test_one_budget_covers_the_snippets_too(engine):
    prompt = engine.prompts.build(PREFIX, SUFFIX, context=SNIPPET)
    assert len(prompt) <= BUDGET
    if "context" in prompt.spans:
        assert len(prompt.segment("context")) <= BUDGET // 4
    # The prefix gets what the others leave (the tiny tokenizer spends ~180 tokens on the instruction).
    assert len(prompt.segment("prefix")) > 120
    assert engine.prompts.decode(prompt.segment("prefix")).endswith("a, b = 0, 1\n    ")


def test_without_snippets_or_suffix_the_prefix_gets_the_room(engine):
    prompt = engine.prompts.build(PREFIX)
    assert BUDGET - 64 < len(prompt) <= BUDGET


def test_a_cut_prefix_keeps_its_start_while_typing(engine):
    """Over budget, the prefix is cut in coarse steps and after a line break, so its start (and
    the prompt cache) moves at most once while a line is typed, not with every keystroke."""
    builder = engine.prompts
    line = "for _ in range(n): a, b = b, a + b"
    starts = []
    for i in range(len(line) + 1):
        prompt = builder.build(PREFIX + line[:i], SUFFIX)
        start = prompt.spans["prefix"][0]
        starts.append(prompt.ids[: start + 8])  # everything before the prefix, and its first tokens
        assert len(prompt) <= BUDGET
    moves = sum(a != b for a, b in zip(starts, starts[1:]))
    assert moves <= 1, moves


def test_each_segment_is_tokenized_once_per_request_and_stable_ones_are_memoized(engine):
    builder = PromptBuilder(engine.prompt_format, BUDGET)  # a fresh memo
    builder.build(PREFIX, SUFFIX, context=SNIPPET)
    first = builder.tokens.calls
    assert first <= 5  # context, suffix, prefix (and the instruction's fixed text and head)
    builder.count(PREFIX + "x")  # the planner counts a new prefix...
    builder.build(PREFIX + "x", SUFFIX, context=SNIPPET)  # ...which the builder then finds
    assert builder.tokens.calls - first == 1


def test_huge_segments_are_never_tokenized_whole(engine):
    calls = []
    builder = PromptBuilder(engine.prompt_format, 256)
    real = builder.tokens.tokenizer

    class Recording:  # records the length of every text handed to the real tokenizer
        def encode(self, text, add_special_tokens=False):
            calls.append(len(text))
            return real.encode(text, add_special_tokens=add_special_tokens)

    builder.tokens.tokenizer = Recording()
    huge = "x = 1\n" * 500_000  # 3 MB
    prompt = builder.build(huge, huge, context=huge)
    assert len(prompt) <= 256 and max(calls) <= 256 * 8 + 1000


@pytest.mark.parametrize("kind", ["spm", "chat", "plain"])
def test_typing_at_the_cursor_encodes_only_the_typed_tokens(kind, spm_dir, chat_dir, plain_dir):
    directory = {"spm": spm_dir, "chat": chat_dir, "plain": plain_dir}[kind]
    engine = Engine(load_model(directory, progress=False), context_tokens=512)
    prefix, suffix = PREFIX[-600:], SUFFIX[:400]
    first = engine.infill(prefix, suffix, key="a.py", canvas_length=16, max_steps=1, seed=0)
    assert first.encoded_tokens == first.prompt_tokens
    encoded = []
    for typed in ("f", "fo", "for", "for ", "for _", "for _ in"):
        completion = engine.infill(prefix + typed, suffix, key="a.py", canvas_length=16, max_steps=1, seed=0)
        encoded.append(completion.encoded_tokens)
    assert max(encoded) <= 3, encoded  # the last token or two merge with what was typed


def test_psm_re_encodes_the_suffix_while_typing(dense_dir):
    """PSM is the model's own order, kept as it is: the cost SPM and the instruction layout avoid."""
    engine = Engine(load_model(dense_dir, progress=False), context_tokens=512)
    prefix, suffix = PREFIX[-600:], SUFFIX[:400]
    engine.infill(prefix, suffix, key="a.py", canvas_length=16, max_steps=1, seed=0)
    completion = engine.infill(prefix + "f", suffix, key="a.py", canvas_length=16, max_steps=1, seed=0)
    suffix_tokens = len(engine.prompts.build(prefix + "f", suffix).segment("suffix"))
    assert suffix_tokens > 50 and completion.encoded_tokens > suffix_tokens


def test_two_documents_typed_in_turn_keep_their_caches(spm_dir):
    engine = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    docs = {"a.py": (PREFIX[-500:], SUFFIX[:300]), "b.py": ("import os\n" + PREFIX[-300:], SUFFIX[:200])}
    for uri, (prefix, suffix) in docs.items():
        engine.infill(prefix, suffix, key=uri, canvas_length=16, max_steps=1, seed=0)
    encoded = []
    for typed in ("r", "re", "ret", "retu"):
        for uri, (prefix, suffix) in docs.items():
            encoded.append(engine.infill(prefix + typed, suffix, key=uri, canvas_length=16, max_steps=1).encoded_tokens)
    assert max(encoded) <= 3, encoded
    assert len(engine.prompt_cache.entries) == 2
