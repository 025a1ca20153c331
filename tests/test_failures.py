"""Every Allo failure in words: what the manager reads, and what the log keeps."""

from __future__ import annotations

import logging

import pytest

from dashboard.allo.errors import (
    AlloAuthenticationError,
    AlloBadResponseError,
    AlloConfigurationError,
    AlloError,
    AlloNotFoundError,
    AlloPermissionError,
    AlloRateLimitedError,
    AlloUnavailableError,
    AlloValidationError,
    AlloWrongTeammateError,
    FieldError,
)
from dashboard.failures import failure_explain

FIELDS = ("name", "voicemail_handling", "do_not_disturb")


def test_allos_400_lands_on_the_field_it_names_in_our_words() -> None:
    failure = failure_explain(
        AlloValidationError(message="name is too long.", code="INVALID_LENGTH", param="name"),
        form_fields=FIELDS,
    )
    assert failure.messages == (
        ("name", "Allo does not accept this name: type 1 to 255 characters."),
    )
    # Our words say it all: Allo's English is not shown.
    assert failure.allo_said is None


def test_a_refusal_we_cannot_explain_keeps_allos_words_aside() -> None:
    failure = failure_explain(
        AlloValidationError(message="name contains a forbidden word.", param="name"),
        form_fields=FIELDS,
    )
    assert failure.messages == (("name", "Allo does not accept this name."),)
    assert failure.allo_said == "name contains a forbidden word."


def test_a_400_naming_a_field_the_form_lacks_goes_on_the_whole_form() -> None:
    failure = failure_explain(
        AlloValidationError(message="user_id is odd.", param="user_id"), form_fields=FIELDS
    )
    assert failure.messages == ((None, "Allo refused this change."),)
    assert failure.allo_said == "user_id is odd."


def test_each_of_allos_field_errors_is_placed() -> None:
    error = AlloValidationError(
        message="Invalid.",
        field_errors=(
            FieldError("name", "INVALID_LENGTH", "name: 1 to 255."),
            FieldError("do_not_disturb", "INVALID_ENUM_VALUE", "ENABLED or DISABLED."),
        ),
    )
    failure = failure_explain(error, form_fields=FIELDS)
    assert failure.messages == (
        ("name", "Allo does not accept this name: type 1 to 255 characters."),
        ("do_not_disturb", "Allo does not accept this choice: pick one of the options shown."),
    )
    assert failure.allo_said is None


@pytest.mark.parametrize(("retry_after", "words"), [(None, "1 second."), (2.2, "3 seconds.")])
def test_a_rate_limit_says_how_long_to_wait(retry_after: float | None, words: str) -> None:
    failure = failure_explain(AlloRateLimitedError(retry_after=retry_after))
    assert failure.text == f"Allo is busy right now; try again in {words}"


def test_a_missing_scope_is_named_from_allos_words_or_from_the_call() -> None:
    said = AlloPermissionError(
        code="API_KEY_INSUFFICIENT_SCOPE", message="This API key lacks the USERS_READ scope."
    )
    assert "lacks the USERS_READ permission" in failure_explain(said).text
    unsaid = AlloPermissionError(code="API_KEY_INSUFFICIENT_SCOPE", message="Forbidden.")
    text = failure_explain(unsaid, scope="DIALING_QUEUE_READ_WRITE").text
    assert "lacks the DIALING_QUEUE_READ_WRITE permission" in text


def test_another_refusal_of_the_key_names_allos_code() -> None:
    error = AlloPermissionError(code="API_KEY_TRIAL_NOT_ALLOWED", status=403)
    text = failure_explain(error, scope="DIALING_QUEUE_READ_WRITE").text
    assert "(API_KEY_TRIAL_NOT_ALLOWED)" in text and "administrator" in text


@pytest.mark.parametrize(
    ("error", "writing", "words"),
    [
        (AlloUnavailableError(request_sent=False), True, "so nothing was changed"),
        (AlloUnavailableError(request_sent=True), True, "it may or may not have been applied"),
        (AlloBadResponseError(), True, "it may or may not have been applied"),
        (AlloUnavailableError(request_sent=True), False, "Allo could not be reached. Try again"),
        (AlloBadResponseError(), False, "Allo could not be reached. Try again"),
    ],
)
def test_only_a_request_that_surely_never_arrived_is_called_unchanged(
    error: AlloError, writing: bool, words: str
) -> None:
    assert words in failure_explain(error, writing=writing).text


def test_a_key_refused_or_missing_is_an_administrators_problem() -> None:
    assert "An administrator needs to check it." in failure_explain(AlloAuthenticationError()).text
    missing = AlloConfigurationError(
        message="No Allo API key is configured (set ALLO_API_KEY).", code="NO_API_KEY"
    )
    assert failure_explain(missing).text == (
        "The dashboard is not connected to Allo. An administrator needs to configure it. "
        "No Allo API key is configured (ALLO_API_KEY)."
    )
    odd = AlloConfigurationError(message="Something else entirely.", code="SOMETHING_NEW")
    assert failure_explain(odd).allo_said == "Something else entirely."


def test_allos_english_never_reaches_the_words_of_a_known_failure() -> None:
    for error in (
        AlloValidationError(
            message="name must be 1 to 255 characters long.", code="REQUIRED", param="name"
        ),
        AlloConfigurationError(
            message="ALLO_API_BASE_URL must start with http", code="BAD_BASE_URL"
        ),
    ):
        failure = failure_explain(error, form_fields=FIELDS)
        assert error.message not in failure.text and failure.allo_said is None


def test_not_found_means_no_such_teammate_on_the_team() -> None:
    failure = failure_explain(AlloNotFoundError(code="ASSIGNEE_NOT_FOUND"))
    assert failure.not_on_team
    # Allo cannot tell someone who left from an id that never existed.
    assert failure.text == "No teammate with this id is on your team."


def test_a_wrong_teammate_is_an_alarm_logged_as_an_error_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = AlloWrongTeammateError(
        request_id="req_dash_42", expected_user_id="usr-b", returned_user_id="usr-owner"
    )
    with caplog.at_level(logging.WARNING, logger="dashboard.failures"):
        failure = failure_explain(
            error, writing=True, teammate_name="Chloé", returned_name="Camille"
        )
    assert failure.alarm
    assert failure.text == (
        "Allo applied this to a different person's queue (Camille)! Nothing was saved for "
        "Chloé. Tell an administrator."
    )
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and "req_dash_42" in record.getMessage()


def test_every_other_failure_is_logged_with_its_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dashboard.failures"):
        failure_explain(AlloUnavailableError(request_id="req_dash_7", status=503))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "req_dash_7" in record.getMessage()
