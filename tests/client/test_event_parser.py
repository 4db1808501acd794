"""The client's reading of a text/event-stream, on the cases the live server rarely sends."""

from __future__ import annotations

from optimlab.client.events import Event, parse


def test_events_comments_and_ids_as_the_whatwg_rules_say() -> None:
    lines = [": ping - 2026-01-01", "",
             "event: status", 'data: {"status":', 'data: "running"}', "",
             "id: 1:4", "event: metrics", 'data: {"series": []}', "",
             "event: status", "data:{}", "",  # no space after the colon; the id carries on
             "retry: 1000", "id", "event: end", "data: {}", ""]

    parsed = list(parse(iter(lines)))

    assert parsed == [None,
                      Event("status", {"status": "running"}, None),
                      Event("metrics", {"series": []}, "1:4"),
                      Event("status", {}, "1:4"),
                      Event("end", {}, None)]  # an empty id field clears it


def test_a_half_received_event_is_not_an_event() -> None:
    lines = ["id: 1:4", "event: metrics", 'data: {"series": []}', "", "id: 1:9",
             "event: metrics", 'data: {"series": [']  # the connection dropped here

    assert list(parse(iter(lines), "0:0")) == [Event("metrics", {"series": []}, "1:4")]
