"""Prompt-lookup drafts: the continuation of the longest earlier match of the text before the cursor."""

from dg_lsp.context.lookup import MIN_MATCH_CHARS, SEED_MATCH_CHARS, TRUSTED_MATCH_CHARS, lookup_draft

FIRST = "def load_config(path):\n    with open(path) as handle:\n        data = json.load(handle)\n    return data\n\n\n"
SECOND = "def load_settings(path):\n    with open(path) as handle:\n        data = json.load(handle)\n    return "


def draft_at_end(text, others=(), **options):
    return lookup_draft(text, "here", [("here", text), *others], cursor=len(text), **options)


def test_a_repeated_pattern_proposes_what_followed_it():
    draft = draft_at_end(FIRST + SECOND)
    assert draft.text == "data" and draft.source == "here"
    assert draft.match_chars >= len("    with open(path) as handle:\n        data = json.load(handle)\n    return ")
    assert draft.trusted


def test_the_longest_match_wins_over_the_latest():
    near = "x = compute(a)\n    return total\n"
    far = "    values = compute(items)\n    total = sum(values)\n    return total_of(values)\n"
    text = far + near + "    values = compute(items)\n    total = sum(values)\n    return "
    assert draft_at_end(text, min_match=MIN_MATCH_CHARS).text == "total_of(values)"


def test_other_open_documents_are_searched():
    other = ("file:///other.py", FIRST)
    assert draft_at_end(SECOND, [other]).source == "file:///other.py"


def test_the_cursor_itself_short_matches_and_blank_continuations_give_no_draft():
    assert draft_at_end(SECOND) is None  # the only occurrence is at the cursor
    assert draft_at_end("short") is None
    assert draft_at_end("    return x\n" * 3 + "\n", min_match=MIN_MATCH_CHARS) is None  # blank continuation
    text = "a = 1\nfoo_bar = 2\nb = 3\nfoo_bar = "  # a 10-character match is below the seeding length
    assert draft_at_end(text) is None


def test_line_drafts_stop_at_the_line_end_and_block_drafts_take_a_few_lines():
    body = "    if x:\n        y = 1\n        z = 2\n        w = 3\n"
    text = "def f(x):\n" + body + "\n\ndef g(x):\n    if x:\n"
    assert draft_at_end(text, min_match=MIN_MATCH_CHARS).text == "        y = 1"
    assert draft_at_end(text, min_match=MIN_MATCH_CHARS, multiline=True).text.startswith("        y = 1\n        z = 2\n")


def test_trust_needs_a_longer_match_than_seeding():
    assert MIN_MATCH_CHARS <= SEED_MATCH_CHARS < TRUSTED_MATCH_CHARS
    text = "value = first(x) + 1\n" + "zz = first(x) + 1\n".replace("zz", "yy") + "q = first(x) + "
    draft = draft_at_end(text, min_match=MIN_MATCH_CHARS)
    assert draft.text == "1" and not draft.trusted


def test_a_large_document_finds_its_match_far_back():
    """Every occurrence of the needle is not examined (`MAX_HITS` a document, the latest first),
    but the match is extended backwards: a repeat far up a long file still counts."""
    filler = "".join(f"    item_{i} = compute(item_{i - 1})\n" for i in range(20_000))  # ~700 KB
    draft = draft_at_end(FIRST + filler + SECOND)
    assert draft is not None and draft.text == "data"
