"""Google's errors → the Anthropic errors Claude Code understands (status, type, message, retry-after)."""

import re

import orjson
import pytest

from proxy.errors import DEFAULT_RETRY_AFTER, GatewayError, from_google

KEY = "the API key of target 'g'"


def google_error(status: str, message: str = "it went wrong", details: list | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"code": 0, "message": message, "status": status, "details": details or []}}
    )


def retry_info(delay: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def test_resource_exhausted_is_a_429_rate_limit_error_that_waits_as_long_as_google_says():
    e = from_google(429, google_error("RESOURCE_EXHAUSTED", details=[retry_info("7s")]), KEY)
    assert (e.status, e.type, e.headers) == (429, "rate_limit_error", {"retry-after": "7"})


def test_a_429_without_retry_info_takes_the_retry_after_header():
    e = from_google(429, google_error("RESOURCE_EXHAUSTED"), KEY, {"Retry-After": "12"})
    assert e.headers == {"retry-after": "12"}


def test_a_429_with_no_hint_at_all_waits_the_default():
    e = from_google(429, b"", KEY)
    assert (e.status, e.headers) == (429, {"retry-after": str(DEFAULT_RETRY_AFTER)})


def test_a_503_becomes_529_overloaded_which_claude_code_retries_shortly():
    e = from_google(503, google_error("UNAVAILABLE", "model is overloaded"), KEY)
    assert (e.status, e.type, e.retryable) == (529, "overloaded_error", True)


def test_invalid_argument_is_a_400_invalid_request_that_no_other_target_is_asked():
    e = from_google(400, google_error("INVALID_ARGUMENT", "bad schema"), KEY)
    assert (e.status, e.type, e.message, e.retryable) == (
        400,
        "invalid_request_error",
        "INVALID_ARGUMENT: bad schema",
        False,
    )


def test_a_401_is_the_gateways_failure_naming_its_credential_and_the_fix():
    # a 401/403 would read to Claude Code as its own login failing ("Please run /login")
    e = from_google(401, google_error("UNAUTHENTICATED", "token expired"), KEY, fix="set the key")
    assert (e.status, e.type, e.headers["x-should-retry"]) == (502, "api_error", "false")
    assert e.credential and e.retryable  # another target may still answer
    assert e.message == (
        f"{KEY} was rejected by the upstream (UNAUTHENTICATED: token expired) "
        "(gatewatch's Google credential, not your Claude login); to fix: set the key"
    )


def test_a_403_names_the_credential_that_lacks_permission():
    e = from_google(403, google_error("PERMISSION_DENIED", "no access"), KEY)
    assert (e.status, e.type, e.headers["x-should-retry"]) == (502, "api_error", "false")
    assert e.message.startswith(f"{KEY} lacks permission (PERMISSION_DENIED: no access)")


@pytest.mark.parametrize("details", [[{"reason": "API_KEY_INVALID"}], None], ids=["details", "bare"])
def test_a_bad_gemini_api_key_answered_with_400_is_the_gateways_failure_not_worth_retrying(details):
    body = google_error(
        "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=details
    )
    e = from_google(400, body, KEY)
    assert (e.status, e.type) == (502, "api_error") and KEY in e.message
    assert e.headers["x-should-retry"] == "false" and e.credential


def test_context_overflow_is_worded_as_anthropic_does_so_claude_code_compacts():
    msg = "The input token count (1250000) exceeds the maximum number of tokens allowed (1048576)."
    e = from_google(400, google_error("INVALID_ARGUMENT", msg), KEY)
    assert (e.status, e.type) == (400, "invalid_request_error")
    assert re.fullmatch(r"prompt is too long: \d+ tokens > \d+ maximum", e.message)
    assert e.message == "prompt is too long: 1250000 tokens > 1048576 maximum"


def test_a_google_status_we_do_not_know_becomes_a_retryable_500_api_error():
    e = from_google(418, google_error("SOMETHING_NEW"), KEY)
    assert (e.status, e.type, e.retryable) == (500, "api_error", True)


def test_an_unknown_5xx_without_a_json_body_quotes_the_start_of_the_body():
    e = from_google(599, b"<html>proxy trouble</html>", KEY)
    assert (e.status, e.type) == (500, "api_error")
    assert e.message == "upstream answered HTTP 599 with a non-JSON body: '<html>proxy trouble</html>'"


def test_an_error_wrapped_in_a_list_is_read_like_a_bare_one():
    e = from_google(404, b"[" + google_error("NOT_FOUND", "no such model") + b"]", KEY)
    assert (e.status, e.type, e.message) == (404, "not_found_error", "NOT_FOUND: no such model")


def test_a_gateway_error_takes_its_type_and_retryability_from_its_status():
    assert (GatewayError(529, "busy").type, GatewayError(529, "busy").retryable) == ("overloaded_error", True)
    assert (GatewayError(404, "gone").type, GatewayError(404, "gone").retryable) == ("not_found_error", False)
