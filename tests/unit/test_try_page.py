"""The public /try page: off by default, limited per address and per day."""

import re

import pytest
import responses

from factory.app import create_app

GATEWAY = "http://gateway.test/v1/api/pstn"


@pytest.fixture
def gateway():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, GATEWAY, json={"did": "18005550142",
                                                "display": "+1 (800) 555-0142", "pin": "4321"})
        yield mock


def client(settings, **changes):
    return create_app(settings.replace(sip_api_url=GATEWAY, **changes)).test_client()


def page_token(web):
    """The CSRF token the page hands its script; the page's visit gave the client a session."""
    html = web.get("/try").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


def test_the_page_is_off_unless_enabled(settings):
    web = client(settings)
    assert web.get("/try").status_code == 404
    assert web.post("/try/number", json={"region": "NA"}).status_code == 404


def test_a_visitor_gets_a_number_and_pin_then_hits_the_per_address_limit(settings, gateway):
    web = client(settings, try_page=True, try_per_address_limit=1)
    assert "Call our AI assistant" in web.get("/try").get_data(as_text=True)
    token = {"X-CSRF-Token": page_token(web)}
    first = web.post("/try/number", json={"region": "NA"}, headers=token)
    assert first.status_code == 201
    assert first.get_json()["pin"] == "4321" and first.get_json()["number"] == "+18005550142"
    sent = gateway.calls[0].request
    assert b'"region": "AREA_CODE_NA"' in sent.body or b'"region":"AREA_CODE_NA"' in sent.body
    again = web.post("/try/number", json={"region": "NA"}, headers=token)
    assert again.status_code == 429 and again.get_json()["error"] == "limit_reached"
    assert len(gateway.calls) == 1


def test_the_daily_limit_counts_every_address(settings, gateway):
    web = client(settings, try_page=True, try_daily_limit=1, try_per_address_limit=5)
    assert web.post("/try/number", json={"region": "EU"}).status_code == 201
    other = web.post("/try/number", json={"region": "EU"},
                     environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert other.status_code == 429


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"data": "region=NA", "content_type": "application/x-www-form-urlencoded"},
     "application/json"),
    ({"json": {"region": "MARS"}}, "region must be one of"),
])
def test_bad_requests_are_400s(settings, kwargs, message):
    # With the page's CSRF token, so the view itself is what refuses them.
    web = client(settings, try_page=True)
    response = web.post("/try/number", headers={"X-CSRF-Token": page_token(web)}, **kwargs)
    assert response.status_code == 400 and message in response.get_json()["message"]
