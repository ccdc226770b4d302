"""The tokenizer: fixed special ids, a lossless byte-level round trip, code-shaped pieces."""

import json

import pytest
from tokenizers import Tokenizer

from dg_lsp.prompt import PromptBuilder, prompt_format_for
from dg_lsp.train.corpus import build_corpus
from dg_lsp.train.tokenizer import SPECIAL_TOKENS, chars_per_token, main, new_tokenizer, sample_texts, train_tokenizer

CODE = [
    "import os\n\n\ndef read(path):\n    with open(path) as f:\n        return f.read()\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "function add(a, b) {\n\treturn a + b;\n}\r\nconst xs = [1, 2, 3].map((x) => add(x, 10));\r\n",
    "for i in range(100):\n    if i % 3 == 0:\n        print(i)\n            # deep\n                pass\n",
]

TRICKY = [
    "",
    " leading space",
    "emoji 👩‍💻🎉 and flags 🇫🇷",
    "CJK 中文字符 日本語のテキスト 한국어",
    "\ttabs\t\tinside\t\n\t\t\tindented",
    "windows\r\nline\r\nends\r\n\r\n",
    " " * 40 + "forty spaces" + " " * 40,
    "\n" + " " * 40 + "x",
    "lone \r carriage return, trailing   \n",
    "combining e\u0301 vs \u00e9, nbsp\u00a0, zero width\u200b, NUL \x00, BEL \x07",
    "'''docstring'''  \"\"\"x\"\"\"  `tpl ${a}`  0x1F 3.14e-10 1_000_000",
    "<|fim_other|> <fim_prefix> <eos",  # look like markers, are not
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CODE * 20, vocab_size=400, progress=False)


def test_special_token_ids(tokenizer):
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert (tokenizer.token_to_id("<pad>"), tokenizer.token_to_id("<eos>"), tokenizer.token_to_id("<bos>")) == (0, 1, 2)
    assert tokenizer.token_to_id("<|fim_prefix|>") == 3
    assert tokenizer.token_to_id("<|file_separator|>") == 6
    added = tokenizer.get_added_tokens_decoder()
    assert {i: (t.content, t.special) for i, t in added.items()} == {i: (t, True) for i, t in enumerate(SPECIAL_TOKENS)}
    assert 256 + len(SPECIAL_TOKENS) < tokenizer.get_vocab_size() <= 400


@pytest.mark.parametrize("text", TRICKY)
def test_exact_round_trip(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert tokenizer.decode(ids) == text
    assert not set(ids) & set(range(len(SPECIAL_TOKENS)))


def test_round_trip_of_unseen_bytes():
    untrained = train_tokenizer(["abc abc"], vocab_size=300, progress=False)  # every byte is still in the alphabet
    text = "".join(map(chr, range(1, 0x800, 7))) + "\U0001F600"
    assert untrained.decode(untrained.encode(text).ids) == text


def test_no_tokens_added_around_the_text(tokenizer):
    ids = tokenizer.encode("x = 1").ids
    assert ids == tokenizer.encode("x = 1", add_special_tokens=False).ids
    assert tokenizer.token_to_id("<bos>") not in ids and tokenizer.token_to_id("<eos>") not in ids


def test_markers_are_single_special_tokens(tokenizer):
    pre, suf, mid = (tokenizer.token_to_id(t) for t in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    ids = tokenizer.encode("<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>").ids
    assert ids[0] == pre and ids.count(suf) == 1 and ids[-1] == mid
    assert tokenizer.decode(ids, skip_special_tokens=False) == "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>"
    assert tokenizer.decode(ids) == "def f():\n"  # special tokens are skipped by default
    # a tokenizer without them registered spells the marker out in bytes
    plain = Tokenizer.from_str(new_tokenizer().to_str())
    assert plain.token_to_id("<|fim_prefix|>") is None
    # and documents can be encoded with markers as plain text, still losslessly
    tokenizer.encode_special_tokens = True
    try:
        literal = tokenizer.encode("s = '<|fim_prefix|>'").ids
        assert pre not in literal and tokenizer.decode(literal) == "s = '<|fim_prefix|>'"
    finally:
        tokenizer.encode_special_tokens = False


def test_pieces_keep_indentation_with_the_newline():
    pieces = [p for p, _ in new_tokenizer().pre_tokenizer.pre_tokenize_str("if x:\n        return  y12345\r\n\tz")]
    # ByteLevel spells a space Ġ, a newline Ċ, a carriage return č and a tab ĉ
    assert pieces == ["if", "Ġx", ":", "ĊĠĠĠĠĠĠĠĠ", "return", "Ġ", "Ġy", "123", "45", "čĊĉ", "z"]


def test_indentation_is_cheap(tokenizer):
    assert len(tokenizer.encode("\n        return").ids) == 2
    assert len(tokenizer.encode("\n                pass").ids) == 2
    assert len(tokenizer.encode(" " * 40).ids) <= 10  # runs of spaces merged, not 40 bytes
    ratio, chars, tokens = chars_per_token(tokenizer, CODE)
    assert chars == sum(map(len, CODE)) and ratio > 2.0


def test_saved_tokenizer_gives_a_fim_prompt(tmp_path, tokenizer):
    path = tmp_path / "model/tokenizer.json"
    trained = train_tokenizer(CODE * 20, vocab_size=400, out_path=path, progress=False)
    loaded = Tokenizer.from_file(str(path))
    assert loaded.encode(CODE[2]).ids == trained.encode(CODE[2]).ids == tokenizer.encode(CODE[2]).ids
    assert json.loads(path.read_text())["post_processor"] is None
    fmt = prompt_format_for(loaded, tmp_path / "model", [1], 2, {})
    assert fmt.kind == "fim" and fmt.fim_ids == (3, 4, 5)
    builder = PromptBuilder(fmt, 256)
    prompt = list(builder.build("def f(x):\n    return ", "\n").ids)
    assert prompt[:2] == [2, 3] and prompt[-1] == 5
    assert builder.decode(prompt) == "def f(x):\n    return \n"


def test_vocab_too_small():
    with pytest.raises(ValueError):
        train_tokenizer(CODE, vocab_size=100, progress=False)


def test_command_line_samples_the_corpus(tmp_path, capsys):
    stdlib = tmp_path / "lib"
    stdlib.mkdir()
    for i in range(30):
        (stdlib / f"m{i}.py").write_text(CODE[i % 4].replace("read", f"read{i}"), encoding="utf-8")
    build_corpus(tmp_path / "corpus", sources=["stdlib"], heldout_fraction=0.2, progress=False, roots={"stdlib": [stdlib]})
    texts = list(sample_texts(tmp_path / "corpus", max_bytes=1000))
    assert texts and sum(len(t.encode()) for t in texts) <= 1000
    assert list(sample_texts(tmp_path / "corpus", 1000)) == texts  # seeded
    assert main([str(tmp_path / "corpus"), str(tmp_path / "tok.json"), "--vocab-size", "300", "--no-progress"]) == 0
    assert Tokenizer.from_file(str(tmp_path / "tok.json")).token_to_id("<|file_separator|>") == 6
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["vocab_size"] <= 300 and record["heldout"]["python"]["chars_per_token"] > 1.0
