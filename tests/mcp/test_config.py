from __future__ import annotations

import pytest

from dpg_mcp.config import DEFAULT_API_URL, SANDBOX_TOKEN, ConfigError, load_settings


def test_defaults_from_env() -> None:
    s = load_settings(env={"DPG_TOKEN": "dpg_api_live_x"})
    assert s.api_url == DEFAULT_API_URL
    assert s.secret() == "dpg_api_live_x"
    assert s.wait_budget_s == 45.0
    assert s.toolsets is None and s.read_only is False
    assert "dpg_api_live_x" not in repr(s) and "dpg_api_live_x" not in str(s.model_dump())


def test_flags_win_over_env() -> None:
    s = load_settings(
        env={"DPG_TOKEN": "t", "DPG_API_URL": "https://a.example/", "DPG_TOOLSETS": "images"},
        api_url="http://127.0.0.1:8900/",
        toolsets="sets, images",
        read_only=True,
        wait_budget_s=2,
    )
    assert s.api_url == "http://127.0.0.1:8900"
    assert s.toolsets == frozenset({"sets", "images"})
    assert s.read_only and s.wait_budget_s == 2


def test_env_read_only_and_toolsets() -> None:
    s = load_settings(env={"DPG_TOKEN": "t", "DPG_READ_ONLY": "true", "DPG_TOOLSETS": "files"})
    assert s.read_only and s.toolsets == frozenset({"files"})


@pytest.mark.parametrize(
    ("env", "kw", "needle"),
    [
        ({"DPG_TOKEN": "t", "DPG_API_URL": "ftp://x"}, {}, "http(s) URL"),
        ({"DPG_TOKEN": "t", "DPG_API_URL": "api.digitalphotogallery.com"}, {}, "http(s) URL"),
        ({"DPG_TOKEN": "t"}, {"toolsets": "images,photos"}, "unknown toolset photos"),
        ({"DPG_TOKEN": "t", "DPG_WAIT_SECONDS": "soon"}, {}, "DPG_WAIT_SECONDS"),
        ({"DPG_TOKEN": "t"}, {"wait_budget_s": -1}, "wait_budget_s"),
    ],
)
def test_bad_settings_are_one_clear_line(env: dict[str, str], kw: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, **kw)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_token() -> None:
    s = load_settings(env={})
    with pytest.raises(ConfigError, match="no DPG token: set DPG_TOKEN"):
        s.secret()


def test_sandbox_defaults() -> None:
    s = load_settings(env={"DPG_API_URL": "https://elsewhere.example"}, sandbox=True)
    assert s.secret() == SANDBOX_TOKEN
    assert s.api_url.startswith("http://") and "elsewhere" not in s.api_url


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://api.example", False, True),
        ("http://api.example", False, False),
        ("http://api.example", True, True),
        ("http://127.0.0.1:8900", False, True),
        ("http://[::1]:8900", False, True),
        ("http://localhost:8900", False, True),
        ("http://127.0.0.1.example.com", False, False),
    ],
)
def test_plain_http_only_to_loopback_or_when_allowed(url: str, allow_http: bool, ok: bool) -> None:
    if ok:
        assert load_settings(env={"DPG_TOKEN": "t", "DPG_API_URL": url}, allow_http=allow_http).api_url == url
    else:
        with pytest.raises(ConfigError, match=r"must use https.*--allow-http"):
            load_settings(env={"DPG_TOKEN": "t", "DPG_API_URL": url}, allow_http=allow_http)


@pytest.mark.parametrize("token", ["dpg api", "dpg\tapi", "dpg\napi", "dpg_\u00e9", "dpg_\x00", "dpg_\u200b"])
def test_token_must_be_printable_ascii(token: str) -> None:
    with pytest.raises(ConfigError, match=r"^DPG_TOKEN holds") as info:
        load_settings(env={"DPG_TOKEN": token}).secret()
    assert token not in str(info.value)


def test_token_surrounding_whitespace_is_dropped() -> None:
    assert load_settings(env={"DPG_TOKEN": "  dpg_api_x\n"}).secret() == "dpg_api_x"
