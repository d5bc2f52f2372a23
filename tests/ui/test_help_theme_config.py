"""Help from bindings, theme files (shipped, user overrides, errors), config choices saved back."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tokentop import config as config_mod
from tokentop.ui.screens.help import HelpScreen
from tokentop.ui.themes import load_themes, shipped_theme_dir

from tests.ui.helpers import fleet_events, make_app, snapshot_of


async def test_help_lists_the_active_bindings() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = dict((d, k) for k, d in app.screen.rows)
        assert rows["Kill"] == "k F9"  # function keys as printed on the keyboard
        assert rows["Pause display"] == "p Z"
        assert rows["Filter"] == "/"
        assert rows["Agents view"] == "1" and rows["Projects view"] == "4"
        assert not any(d.startswith("View 5") or d == "View 5" for d in rows)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_shipped_themes_are_valid_and_cover_light_and_low_colour() -> None:
    shipped = shipped_theme_dir()
    assert shipped is not None
    loaded = load_themes(shipped, Path("/nonexistent"))
    assert loaded.errors == []
    assert len(loaded.themes) >= 5
    assert any(not t.dark for t in loaded.themes.values())
    ansi = loaded.themes["tokentop-ansi"]
    assert all(str(getattr(ansi, f)).startswith("ansi_") for f in ("primary", "background", "error"))
    for theme in loaded.themes.values():
        assert {"burn-low", "burn-mid", "burn-high", "spark"} <= set(theme.variables)


async def test_bad_theme_files_are_reported_together_and_app_falls_back(isolated_dirs: Path) -> None:
    user = config_mod.config_dir() / "themes"
    user.mkdir(parents=True)
    (user / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    (user / "garbage.toml").write_text("this is = = not toml")
    (user / "typo.toml").write_text('name = "typo"\nprimary = "#112233"\nbackgroud = "#000000"\n')
    (user / "tokentop.toml").write_text('name = "tokentop"\nprimary = "#ff00ff"\n[variables]\nburn-high = "#00ff00"\n')
    notes: list[tuple[str, str]] = []
    app = make_app(snapshot_of(fleet_events()), theme="broken")
    app.notify = lambda message, **kw: notes.append((message, kw.get("severity", "")))  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "tokentop"  # fell back to the default...
        assert app.current_theme.primary == "#ff00ff"  # ...which the user's file overrides
        assert app.theme_variables["burn-high"] == "#00ff00"
        assert len(notes) == 1  # one message for all problems
        message, severity = notes[0]
        assert severity == "error"
        assert "3 theme file(s)" in message
        assert "'not-a-colour' is not a colour" in message
        assert "not valid TOML" in message
        assert "unknown key 'backgroud'" in message
        assert "theme 'broken' is not installed" in message
        assert "textual-dark" in app.available_themes  # built-ins stay available


async def test_builtin_theme_gets_burn_colours_derived() -> None:
    app = make_app(snapshot_of(fleet_events()), theme="nord")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "nord"
        for var in ("burn-low", "burn-mid", "burn-high", "spark"):
            assert app.theme_variables[var].startswith("#")


async def test_no_color_picks_the_low_colour_theme(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.no_color
        assert app.theme == "tokentop-ansi"


async def test_choices_are_saved_back_without_losing_other_settings(isolated_dirs: Path) -> None:
    path = config_mod.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('# mine\n[feed]\nlisten = "127.0.0.1:9999"\n\n[pricing."my-model"]\ninput = 1.0\noutput = 2.0\n')
    app = make_app(snapshot_of(fleet_events()), config_path=path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("2", "T", "I")
        app.theme = "tokentop-light"
        await pilot.pause()
    saved = tomllib.loads(path.read_text())
    assert saved["ui"]["view"] == "sessions"
    assert saved["ui"]["sort"] == "tokens" and saved["ui"]["sort_reverse"] is True
    assert saved["ui"]["theme"] == "tokentop-light"
    assert saved["feed"]["listen"] == "127.0.0.1:9999"
    assert saved["pricing"]["my-model"] == {"input": 1.0, "output": 2.0}
    cfg = config_mod.load(path)
    assert cfg.ui.view == "sessions"


def test_config_typo_is_reported_with_file_line_and_suggestion(isolated_dirs: Path, capsys) -> None:  # noqa: ANN001
    from tokentop.cli import main

    path = isolated_dirs / "bad.toml"
    path.write_text('[ui]\nthem = "ember"\n')
    try:
        code = main(["--config", str(path), "--once", "--plain"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}:2" in err and "did you mean 'theme'" in err
