"""ECS error codes as the public common-error list and the action references name them.

Every failure a client can see is an ApiError: a code, an HTTP status and a message.
Anything else escaping an action is a bug and is answered as InternalError (500)."""

from __future__ import annotations


class ApiError(Exception):
    """An error the API answers with: ECS code, HTTP status, human message."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        # Seconds a throttled client should wait; rendered as x-acs-retry-after.
        self.retry_after: int | None = None


def missing_parameter(name: str, *, common: bool = False) -> ApiError:
    """A required parameter is absent. Protocol parameters answer plain MissingParameter,
    action parameters MissingParameter.<Name>, as ECS does."""
    code = "MissingParameter" if common else f"MissingParameter.{name}"
    return ApiError(
        code, f'The input parameter "{name}" that is mandatory for processing this request is not supplied.'
    )


def invalid_parameter(name: str, detail: str = "", *, code: str = "InvalidParameter") -> ApiError:
    """A parameter is malformed, of the wrong type or out of range."""
    message = f'The specified parameter "{name}" is not valid.'
    if detail:
        message = f"{message} {detail}"
    return ApiError(code, message)


def signature_does_not_match(string_to_sign: str) -> ApiError:
    # aliyun-python-sdk-core compares the text after "string to sign is:" with its own
    # string to sign and re-labels the error InvalidAccessKeySecret when they agree.
    return ApiError(
        "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation. server string to sign is:" + string_to_sign,
    )


def incomplete_signature(detail: str) -> ApiError:
    return ApiError("IncompleteSignature", f"The request signature does not conform to Aliyun standards. {detail}")


def access_key_not_found() -> ApiError:
    return ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)


def access_key_inactive() -> ApiError:
    return ApiError("InvalidAccessKeyId.Inactive", "Specified access key is disabled.", 400)


def timestamp_expired(value: str) -> ApiError:
    return ApiError(
        "InvalidTimeStamp.Expired",
        f"Specified time stamp or date value is expired. The timestamp {value!r} is more than 15 minutes "
        "away from the server time.",
    )


def timestamp_format(value: str) -> ApiError:
    return ApiError(
        "InvalidTimeStamp.Format",
        f"Specified time stamp or date value {value!r} is not well formatted; use ISO 8601 UTC, "
        "for example 2024-01-01T12:00:00Z.",
    )


def nonce_used() -> ApiError:
    return ApiError("SignatureNonceUsed", "Specified signature nonce was used already.")


def action_not_found(action: str, version: str) -> ApiError:
    return ApiError(
        "InvalidAction.NotFound",
        f"Specified api is not found, please check your url and method. Action {action!r} does not exist "
        f"in version {version!r}.",
        404,
    )


def version_not_supported(version: str) -> ApiError:
    return ApiError(
        "InvalidVersion",
        f"Specified parameter Version is not valid. Supported versions are 2014-05-26 (ECS) and "
        f"2016-04-28 (VPC); got {version!r}.",
    )


def throttled(retry_after: int) -> ApiError:
    error = ApiError("Throttling", "Request was denied due to request throttling.", 400)
    error.retry_after = retry_after
    return error


def forbidden(message: str) -> ApiError:
    return ApiError("Forbidden", message, 403)


def internal_error() -> ApiError:
    return ApiError("InternalError", "The request processing has failed due to some unknown error.", 500)


def dry_run_operation() -> ApiError:
    return ApiError("DryRunOperation", "Request validation has been passed with DryRun flag set.")
