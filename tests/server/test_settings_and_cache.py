"""Settings parsing and the completion cache, without a server."""

from dg_lsp.server.completion_cache import CompletionCache
from dg_lsp.server.settings import RemoteSettings, Settings, schema, update_settings


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
    assert described["dgLsp.steps"]["default"] == 1 and described["dgLsp.minConfidence"]["default"] == 0.2
    assert described["dgLsp.minConfidenceInLine"]["default"] == 0.1
    assert described["dgLsp.minConfidenceInvoked"]["default"] == 0.1
    assert described["dgLsp.device"]["enum"] == ["auto", "cpu", "cuda"]
    nested = {f"dgLsp.remote.{name}" for name in RemoteSettings.__dataclass_fields__}
    assert set(described) == {f"dgLsp.{name}" for name in Settings.__dataclass_fields__ if name != "remote"} | nested
    assert described["dgLsp.engine"] == {"default": "local", "enum": ["local", "remote"]}
    assert described["dgLsp.remote.kind"]["enum"] == ["openai", "openai-suffix", "llamacpp-infill"]


def test_the_remote_table_is_checked_key_by_key():
    settings, warnings = update_settings(Settings(), {"dgLsp": {"engine": "remote", "remote": {
        "url": "http://gpu-box:8000", "kind": "llamacpp-infill", "family": "llama", "timeoutMs": 10,
        "apiKey": "sk-secret", "apiKeyEnv": "TEAM_KEY"}}})
    assert settings.engine == "remote" and settings.remote.url == "http://gpu-box:8000"
    assert settings.remote.kind == "llamacpp-infill" and settings.remote.apiKeyEnv == "TEAM_KEY"
    assert settings.remote.family == "" and settings.remote.timeoutMs == 5000  # bad values keep the old ones
    assert any("dgLsp.remote.family" in w for w in warnings) and any("dgLsp.remote.timeoutMs" in w for w in warnings)
    assert any("dgLsp.remote.apiKey " in w and "environment variable" in w for w in warnings)
    assert not any("sk-secret" in w for w in warnings)  # a key put in settings is never echoed
    # A later change of one key keeps the others; nonsense keeps the table.
    later, _ = update_settings(settings, {"remote": {"model": "qwen2.5-coder"}})
    assert later.remote.url == "http://gpu-box:8000" and later.remote.model == "qwen2.5-coder"
    for raw in ("http://x", [1], {"url": "gpu-box:8000"}, {"apiKeyEnv": "sk-abc-123"}, {"timeoutMs": "5s"}):
        kept, warnings = update_settings(later, {"remote": raw})
        assert kept == later and warnings


def _plan(**changes):
    from dg_lsp.context.plan import InfillPlan

    fields = dict(prefix="def f():\n    return ", suffix="\n", context="", mode="line", canvas_length=24, indent="",
                  cursor_offset=20)
    return InfillPlan(**{**fields, **changes})


def test_the_completion_cache_key_holds_everything_a_completion_depends_on():
    key = CompletionCache.key("model-a|1", 0, _plan(), "auto", (4, 1))
    assert key == CompletionCache.key("model-a|1", 0, _plan(), "auto", (4, 1))
    others = [
        CompletionCache.key("model-b|2", 0, _plan(), "auto", (4, 1)),  # another model (or load)
        CompletionCache.key("model-a|1", 7, _plan(), "auto", (4, 1)),  # another seed
        CompletionCache.key("model-a|1", 0, _plan(canvas_length=64), "auto", (4, 1)),
        CompletionCache.key("model-a|1", 0, _plan(context="# path: b.py\nx = 1\n"), "auto", (4, 1)),  # snippets
        CompletionCache.key("model-a|1", 0, _plan(suffix="\nprint()\n"), "auto", (4, 1)),
        CompletionCache.key("model-a|1", 0, _plan(), "invoked", (32, 3)),
    ]
    assert all(other != key for other in others)


def test_exact_context_cache():
    cache = CompletionCache(max_entries=2)
    key = cache.key("model", 0, _plan(), "auto")
    assert cache.get(key) is None
    cache.put(key, ["x + 1"])
    assert cache.get(key) == ["x + 1"]
    cache.put(("a",), ["1"])
    cache.put(("b",), ["2"])
    assert cache.get(key) is None  # evicted, least recently used
    cache.put(key, ["x + 1"])
    cache.remember_shown("u", "text", 2, ["x"])
    cache.clear()  # the model changed
    assert cache.get(key) is None and cache.forward("u", "text", 3) is None


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
