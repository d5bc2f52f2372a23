"""``status.providers`` typed (ProvidersStatus): the feed's writer and the Providers screen's reader
agree, through an embedded snapshot and through a remote feed's JSON; odd JSON is read tolerantly."""

from __future__ import annotations

from tokentop.core.providers.status import ProvidersStatus, ProviderStatus

POLLED = ProviderStatus(enabled=True, key="sk-admin-…cdef", key_source="OPENAI_ADMIN_KEY",
                        base_url="https://api.openai.com/v1", last_success_at=1_700_000_000.5, last_error=None,
                        last_error_at=None, rows_rejected=2, polls=9,
                        unattributed={"window_s": 3600, "billed_usd": "1.20", "explanation": "..."})


def test_providers_status_over_the_wire(status_snapshots) -> None:
    status = ProvidersStatus({
        "openai": POLLED,
        "anthropic": ProviderStatus.left_out("no admin key: set ANTHROPIC_ADMIN_KEY or key_file in the config"),
    })
    embedded, remote = status_snapshots("providers", status.to_json())
    for snap in (embedded, remote):
        assert ProvidersStatus.of(snap) == status
    assert not status.any_error


def test_the_documented_json_shapes() -> None:
    assert POLLED.to_json() == {
        "enabled": True, "key": "sk-admin-…cdef", "key_source": "OPENAI_ADMIN_KEY",
        "base_url": "https://api.openai.com/v1", "last_success_at": 1_700_000_000.5, "last_error": None,
        "last_error_at": None, "rows_rejected": 2, "polls": 9,
        "unattributed": {"window_s": 3600, "billed_usd": "1.20", "explanation": "..."},
    }
    assert ProviderStatus.left_out("disabled in config").to_json() == {"enabled": False, "reason": "disabled in config"}
    refused = ProviderStatus.left_out("refusing key file", last_error="refusing key file")
    assert refused.to_json() == {"enabled": False, "reason": "refusing key file", "last_error": "refusing key file"}
    assert ProvidersStatus({"anthropic": refused}).any_error
    broken = ProvidersStatus(error="[providers.openai] bad base_url")
    assert broken.to_json() == {"error": "[providers.openai] bad base_url"}
    assert ProvidersStatus.from_json(broken.to_json()) == broken and broken.any_error


def test_reader_skips_what_it_cannot_read() -> None:
    read = ProvidersStatus.from_json({"openai": {"enabled": "yes", "polls": "9", "last_success_at": True,
                                                 "unattributed": []},
                                      "junk": 3})
    assert read is not None and list(read.providers) == ["openai"]
    entry = read.providers["openai"]
    assert entry.enabled is False and entry.polls == 0 and entry.last_success_at is None and entry.unattributed is None
    assert ProvidersStatus.of(None) is None and ProvidersStatus.from_json("x") is None
