"""The log sources' snapshot status typed: ``status.import`` and ``status.sources`` read back the
same from an embedded snapshot and a remote feed's JSON, in the shapes docs/api.md documents."""

from __future__ import annotations

from tokentop.core.sources.status import ImportStatus, SourcesStatus


def test_import_status_shapes_and_round_trip(status_snapshots) -> None:
    assert ImportStatus.importing(42).to_json() == {"state": "importing", "percent": 42, "text": "importing 42 %"}
    done = ImportStatus.finished(1234, 2.71828)
    assert done.to_json() == {"state": "done", "percent": 100, "events": 1234, "seconds": 2.718, "text": "imported"}
    for status in (ImportStatus.importing(42), done):
        embedded, remote = status_snapshots("import", status.to_json())
        assert ImportStatus.of(embedded) == status and ImportStatus.of(remote) == status
    assert ImportStatus.from_json({"percent": 3}) is None and ImportStatus.of(None) is None


def test_sources_status_shapes_and_round_trip(status_snapshots) -> None:
    watching = SourcesStatus("watching", ("claude-code", "codex"), {"files": 3, "lines": 120, "events": 40})
    assert watching.to_json() == {"state": "watching", "enabled": ["claude-code", "codex"], "files": 3, "lines": 120,
                                  "events": 40}
    assert SourcesStatus.failed().to_json() == {"state": "failed", "see": "feed log"}
    for status in (watching, SourcesStatus.failed()):
        embedded, remote = status_snapshots("sources", status.to_json())
        assert SourcesStatus.of(embedded) == status and SourcesStatus.of(remote) == status
    odd = SourcesStatus.from_json({"state": "polling", "enabled": "all", "files": "3", "lines": 7})
    assert odd == SourcesStatus("polling", None, {"lines": 7})
