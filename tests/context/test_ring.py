from dg_lsp.context.ring import Snippet, SnippetRing

from .samples import GO, LUA, PYTHON, RUST, TYPESCRIPT, big_python


def test_snippets_are_most_recent_first_and_never_from_the_current_document():
    ring = SnippetRing()
    ring.add("file:///a.py", PYTHON, 0)
    ring.add("file:///b.ts", TYPESCRIPT, 10)
    ring.add("file:///c.rs", RUST, 5)
    snippets = ring.snippets("file:///b.ts", max_chars=10_000)
    assert [s.uri for s in snippets] == ["file:///c.rs", "file:///a.py"]
    assert snippets[0] == Snippet("file:///c.rs", RUST)  # the whole (short) file fits a chunk
    assert snippets[1].text == PYTHON


def test_a_chunk_holds_chunk_lines_around_the_edit():
    text = big_python(400)
    ring = SnippetRing(chunk_lines=64)
    ring.add("file:///big.py", text, 200)
    (snippet,) = ring.snippets("file:///other.py", max_chars=100_000)
    lines = text.split("\n")
    assert snippet.text == "\n".join(lines[168:232]) + "\n"


def test_an_overlapping_chunk_of_the_same_document_replaces_the_old_one():
    text = big_python(600)
    ring = SnippetRing(chunk_lines=64)
    ring.add("file:///big.py", text, 100)
    ring.add("file:///go.go", GO, 0)
    ring.add("file:///big.py", text, 110)  # mostly the same lines: replaces, moves to the front
    ring.add("file:///big.py", text, 400)  # elsewhere in the file: a second chunk
    snippets = ring.snippets("file:///x.py", max_chars=100_000)
    assert [s.uri for s in snippets] == ["file:///big.py", "file:///big.py", "file:///go.go"]
    lines = text.split("\n")
    assert snippets[0].text.startswith(lines[368] + "\n")
    assert snippets[1].text.startswith(lines[78] + "\n")


def test_the_ring_keeps_at_most_max_chunks():
    ring = SnippetRing(max_chunks=3)
    for i in range(5):
        ring.add(f"file:///f{i}.lua", LUA, 0)
    assert [s.uri for s in ring.snippets("", max_chars=100_000)] == ["file:///f4.lua", "file:///f3.lua", "file:///f2.lua"]


def test_max_chars_cuts_at_a_line_boundary():
    ring = SnippetRing()
    ring.add("file:///a.py", PYTHON, 0)
    ring.add("file:///b.rs", RUST, 0)
    snippets = ring.snippets("", max_chars=len(RUST) + 100)
    assert snippets[0].text == RUST
    assert len(snippets[1].text) <= 100 and snippets[1].text.endswith("\n")
    assert PYTHON.startswith(snippets[1].text)
    assert sum(len(s.text) for s in snippets) <= len(RUST) + 100


def test_typing_in_the_current_document_does_not_change_its_snippets():
    ring = SnippetRing()
    ring.add("file:///a.py", PYTHON, 20)
    ring.add("file:///b.rs", RUST, 10)
    ring.add("file:///c.go", GO, 3)
    current = big_python(300)
    ring.add("file:///cur.py", current, 150)
    before = ring.snippets("file:///cur.py", max_chars=4000)
    for i in range(30):  # one change notification per keystroke
        current = current[: 5000 + i] + "x" + current[5000 + i :]
        ring.add("file:///cur.py", current, 150 + i // 10)
        assert ring.snippets("file:///cur.py", max_chars=4000) == before
    assert [s.uri for s in before] == ["file:///c.go", "file:///b.rs", "file:///a.py"]


def test_a_chunk_keeps_the_text_it_was_added_with():
    ring = SnippetRing()
    ring.add("file:///a.py", "x = 1\n", 0)
    ring.add("file:///b.py", "y = 2\n", 0)  # a.py leaves the front: its lines are cut out
    assert ring.snippets("file:///b.py", 100) == [Snippet("file:///a.py", "x = 1\n")]
