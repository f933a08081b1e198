"""POST /webhook under random and near-valid NCS deliveries, signed and not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from calls import lifecycle
from ncs.signature import V1_HEADER, V2_HEADER, sign
from tests.fuzz.harness import FuzzedService
from tests.fuzz.strategies import (
    HEADER_TEXT,
    Delivery,
    Known,
    deliveries,
    encode,
    fuzz_profile,
    ncs_envelopes,
)


def signature_headers(service: FuzzedService, delivery: Delivery, body: bytes) -> dict[str, str]:
    secret = service.settings.agora_ncs_secret
    good = sign(secret, body)
    wrong = sign("not-the-configured-secret", body)
    return {
        "v2": {V2_HEADER: good[V2_HEADER]},
        "v1": {V1_HEADER: good[V1_HEADER]},
        "both": good,
        "v2_upper_spaced": {V2_HEADER: f"  {good[V2_HEADER].upper()} "},
        "none": {},
        "wrong_secret": wrong,
        "garbage": {V2_HEADER: delivery.headers.get("X-Request-Id", "zz" * 32)},
        "renamed": {f"X-{V2_HEADER}": good[V2_HEADER], f"X-{V1_HEADER}": good[V1_HEADER]},
        "empty": {V2_HEADER: ""},
        "v2_bad_v1_good": {V2_HEADER: wrong[V2_HEADER], V1_HEADER: good[V1_HEADER]},
    }[delivery.signing]


def deliver(service: FuzzedService, delivery: Delivery) -> TestResponse:
    body = delivery.body
    if not isinstance(body, bytes):
        body = encode(service.resolve(body), ensure_ascii=delivery.ensure_ascii,
                      compact=delivery.compact)
    headers = {**delivery.headers, **signature_headers(service, delivery, body)}
    return service.send("POST", "/webhook", body, headers=headers)


def test_any_delivery_is_answered_200_400_or_401_never_5xx(service: FuzzedService) -> None:
    @fuzz_profile()
    @given(delivery=deliveries())
    def run(delivery: Delivery) -> None:
        answer = deliver(service, delivery)
        service.check(answer, "POST /webhook")
        if delivery.validly_signed:
            # Signed: the parser and the service decide; only the body can be wrong.
            assert answer.status_code in (200, 400), answer.get_data(as_text=True)
            if answer.status_code == 200:
                assert answer.get_json()["status"] in ("ok", "ignored")
        else:
            assert answer.status_code == 401, answer.get_data(as_text=True)
            assert answer.get_json()["error"] == "invalid_signature"

    run()
    service.assert_still_serving()


#: A few channels, so that random joins and leaves meet each other's calls.
FEW_CHANNELS = st.sampled_from(["fz_a", "fz_b", "fz_c"]) | st.builds(Known, st.just("channel"),
                                                                     st.integers(0, 2))


def test_signed_event_sequences_keep_one_open_call_per_channel(service: FuzzedService) -> None:
    """Joins, leaves, duplicates and reorderings of near-valid events on a few channels: every
    one answered 200 or 400, and no channel ever has two open calls."""

    @fuzz_profile()
    @given(envelopes=st.lists(ncs_envelopes(channels=FEW_CHANNELS), min_size=1, max_size=6),
           compact=st.booleans())
    def run(envelopes: list[dict], compact: bool) -> None:
        channels = set()
        for envelope in envelopes:
            body = encode(service.resolve(envelope), ensure_ascii=True, compact=compact)
            answer = service.send("POST", "/webhook", body, headers=service.signed(body))
            service.check(answer, "POST /webhook (signed)")
            assert answer.status_code in (200, 400), answer.get_data(as_text=True)
            if answer.status_code == 200 and answer.get_json().get("call_id"):
                # The event reached a call, so its channel is one the store holds.
                channels.add(service.resolve(envelope)["payload"]["channelName"])
        store = service.app.extensions["store"]
        for channel in channels:
            open_calls = [c for c in store.list_calls(states=list(lifecycle.OPEN_STATES),
                                                      channel=channel, limit=200)
                          if c.channel == channel]
            assert len(open_calls) <= 1, f"{channel!r} has {len(open_calls)} open calls"

    run()
    service.assert_still_serving()


def test_signature_headers_of_any_text_are_refused_with_401(service: FuzzedService) -> None:
    @fuzz_profile()
    @given(v2=st.none() | HEADER_TEXT, v1=st.none() | HEADER_TEXT, body=st.binary(max_size=64))
    def run(v2: str | None, v1: str | None, body: bytes) -> None:
        headers = {k: v for k, v in ((V2_HEADER, v2), (V1_HEADER, v1)) if v is not None}
        answer = service.send("POST", "/webhook", body, headers=headers)
        service.check(answer, "POST /webhook (any signature)")
        assert answer.status_code == 401

    run()
