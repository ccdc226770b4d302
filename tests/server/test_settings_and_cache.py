"""Settings parsing and the completion cache, without a server."""

from dg_lsp.server.completion_cache import CompletionCache
from dg_lsp.server.settings import Settings, schema, update_settings


def test_settings_accept_the_dglsp_table_and_warn_about_the_rest():
    settings, warnings = update_settings(Settings(), {"dgLsp": {
        "steps": 6, "maxCanvas": 64.0, "enabledLanguages": ["python"], "device": "gpu", "colour": "blue",
        "contextTokens": 10}})
    assert settings.steps == 6 and settings.maxCanvas == 64 and settings.enabledLanguages == ("python",)
    assert settings.device == "auto" and settings.contextTokens == 2048  # bad values keep the old ones
    assert any("dgLsp.colour" in w for w in warnings)
    assert any("dgLsp.device" in w and "auto, cpu, cuda" in w for w in warnings)
    assert any("dgLsp.contextTokens" in w for w in warnings)
    assert settings.enabled_for("python") and not settings.enabled_for("rust")


def test_settings_ignore_nonsense_without_crashing():
    for raw in (None, [], "text", {"dgLsp": {"steps": True}}, {"dgLsp": {"enabledLanguages": [1]}}):
        settings, _ = update_settings(Settings(), raw)
        assert settings == Settings()


def test_schema_lists_every_setting_with_its_default():
    described = schema()
    assert described["dgLsp.steps"]["default"] == 4
    assert described["dgLsp.device"]["enum"] == ["auto", "cpu", "cuda"]
    assert set(described) == {f"dgLsp.{name}" for name in Settings.__dataclass_fields__}


def test_exact_context_cache():
    cache = CompletionCache(max_entries=2)
    key = cache.key("def f():\n    return \n", 20, "auto")
    assert cache.get(key) is None
    cache.put(key, ["x + 1"])
    assert cache.get(key) == ["x + 1"]
    cache.put(("a",), ["1"])
    cache.put(("b",), ["2"])
    assert cache.get(key) is None  # evicted, least recently used


def test_typing_into_a_shown_completion_forwards_the_rest():
    cache = CompletionCache()
    text = "def f(a):\n    return \n"
    cursor = text.index("return ") + 7
    cache.remember_shown("u", text, cursor, ["a + 1", "None"])
    typed = text[:cursor] + "a " + text[cursor:]
    assert cache.forward("u", typed, cursor + 2) == ["+ 1"]
    other = text[:cursor] + "b" + text[cursor:]
    assert cache.forward("u", other, cursor + 1) is None  # typed something else
    moved_suffix = typed[: cursor + 2] + "\n# changed" + typed[cursor + 2 :]
    assert cache.forward("u", moved_suffix, cursor + 2) is None  # the text after the cursor changed
