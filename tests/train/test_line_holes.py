"""Line holes cut from decoded text, as the server cuts them (dg_lsp/train/line_holes.py)."""

import random
import textwrap
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from dg_lsp.prompt.decode import line_break_ids
from dg_lsp.train.data import EOS, FILE_SEPARATOR, FIM_MIDDLE, PAD, FimSampler, TokenStream
from dg_lsp.train.line_holes import LineHoleCutter
from dg_lsp.train.settings import share

# The shipped tokenizer merges a line break with the next line's indentation, the case at stake.
TOKENIZER = Path(__file__).parents[2] / "dg_lsp" / "models" / "default" / "tokenizer.json"
SOURCE = Path(textwrap.__file__).read_text()


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_file(str(TOKENIZER))


def test_a_hole_is_one_whole_line_of_the_text_with_the_cursor_at_column_0_or_after_the_indentation(tokenizer):
    stream = TokenStream.from_texts([SOURCE], tokenizer)
    cutter = LineHoleCutter(tokenizer, FILE_SEPARATOR)
    rng = random.Random(0)
    cursors = set()
    for _ in range(60):
        cut = cutter.cut(stream.window(300, rng), rng)
        assert cut is not None
        prefix, middle, suffix = (tokenizer.decode(ids) for ids in cut)
        assert prefix + middle + suffix in SOURCE  # contiguous text, nothing lost at the cuts
        assert "\n" not in middle and middle.strip()
        assert suffix.startswith("\n")  # the line's own break follows the cursor, as in the editor
        line_start = prefix.rsplit("\n", 1)[1]
        assert not line_start.strip()  # the cursor is at the line's start or after its blanks
        column_zero = line_start == ""
        cursors.add(column_zero)
        if column_zero and middle[0] == " ":
            # Each part tokenized on its own: the prefix ends in a bare line break and the middle
            # starts with the indentation, which a split at token boundaries never produces.
            assert tokenizer.decode(cut[0][-1:]).endswith("\n") and not tokenizer.decode(cut[1][:1]).strip()
    assert cursors == {True, False}


def test_the_sampler_mixes_line_holes_into_well_formed_fim_examples(tokenizer):
    stream = TokenStream.from_texts([SOURCE, SOURCE[:2000]], tokenizer)
    sampler = FimSampler(stream, line_break_ids(tokenizer), prompt_len=128, canvas_lens=(16,), seed=1,
                         line_holes=LineHoleCutter(tokenizer, FILE_SEPARATOR), line_hole_share=1.0)
    for _ in range(40):
        prompt, target = sampler.example(16)
        assert prompt.shape == (128,) and target.shape == (16,)
        ids = prompt[prompt != PAD].tolist()
        assert ids[:3] == [2, 3, 4] and ids.count(FIM_MIDDLE) == 1  # <bos> <pre> <suf> suffix <mid> prefix
        assert tokenizer.decode(ids[3 : ids.index(FIM_MIDDLE)]).startswith("\n")
        middle = target.tolist()
        if EOS in middle:
            middle = middle[: middle.index(EOS)]
        assert "\n" not in tokenizer.decode(middle)


def test_without_a_cutter_the_share_draws_nothing_and_old_runs_replay(tokenizer):
    stream = TokenStream.from_texts([SOURCE], tokenizer)
    newlines = line_break_ids(tokenizer)
    plain = FimSampler(stream, newlines, prompt_len=64, seed=5)
    shared = FimSampler(stream, newlines, prompt_len=64, seed=5, line_hole_share=0.5)
    for _ in range(10):
        a, b = plain.example(16), shared.example(16)
        assert a[0].equal(b[0]) and a[1].equal(b[1])


def test_the_share_option_takes_a_fraction():
    assert share("0.3") == 0.3
    for bad in ("-0.1", "1.5"):
        with pytest.raises(Exception, match="between 0 and 1"):
            share(bad)
