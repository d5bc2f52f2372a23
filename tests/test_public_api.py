"""The Python surface other programs import: its names are exactly the documented ones."""

from __future__ import annotations

import tokentop.client
import tokentop.control_link
import tokentop.emitter


def test_public_modules_export_exactly_their_documented_names() -> None:
    assert sorted(tokentop.emitter.__all__) == ["AsyncEmitter", "Emitter"]
    assert tokentop.control_link.__all__ == ["ControlLink"]
    for module in (tokentop.emitter, tokentop.control_link):
        assert all(hasattr(module, name) for name in module.__all__)


def test_the_old_emitter_module_name_still_works() -> None:
    assert tokentop.client.Emitter is tokentop.emitter.Emitter
    assert tokentop.client.AsyncEmitter is tokentop.emitter.AsyncEmitter
