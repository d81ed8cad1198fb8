"""ECS error codes: Requests and any action: protocol parameters, signatures, throttling, codes built at run time, regions, tags."""

from __future__ import annotations

from nubes.errors.base import ApiError

# ---- Requests: protocol parameters, signatures, throttling ---------------------------------------


def missing_parameter(name: str = "", *, message: str = "", common: bool = False) -> ApiError:
    """MissingParameter.<name> for an action parameter. Plain MissingParameter for a protocol
    parameter (common) or, with a message, when no single parameter is to blame, as ECS does."""
    code = f"MissingParameter.{name}" if name and not common else "MissingParameter"
    return ApiError(
        code,
        message
        or f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    )


def invalid_parameter(name: str = "", detail: str = "", *, message: str = "") -> ApiError:
    """A parameter is malformed, of the wrong type or out of range."""
    if not message:
        message = f'The specified parameter "{name}" is not valid.'
        if detail:
            message = f"{message} {detail}"
    return ApiError("InvalidParameter", message)


def signature_does_not_match(string_to_sign: str = "", *, message: str = "") -> ApiError:
    # aliyun-python-sdk-core compares the text after "string to sign is:" with its own
    # string to sign and re-labels the error InvalidAccessKeySecret when they agree.
    return ApiError(
        "SignatureDoesNotMatch",
        message
        or "Specified signature is not matched with our calculation. server string to sign is:"
        + string_to_sign,
    )


def incomplete_signature(detail: str) -> ApiError:
    return ApiError(
        "IncompleteSignature", f"The request signature does not conform to Aliyun standards. {detail}"
    )


def invalid_access_key_id_not_found() -> ApiError:
    return ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)


def invalid_access_key_id_inactive() -> ApiError:
    return ApiError("InvalidAccessKeyId.Inactive", "Specified access key is disabled.", 400)


def invalid_time_stamp_expired(value: str) -> ApiError:
    return ApiError(
        "InvalidTimeStamp.Expired",
        f"Specified time stamp or date value is expired. The timestamp {value!r} is more than 15 minutes "
        "away from the server time.",
    )


def invalid_time_stamp_format(value: str) -> ApiError:
    return ApiError(
        "InvalidTimeStamp.Format",
        f"Specified time stamp or date value {value!r} is not well formatted; use ISO 8601 UTC, "
        "for example 2024-01-01T12:00:00Z.",
    )


def signature_nonce_used() -> ApiError:
    return ApiError("SignatureNonceUsed", "Specified signature nonce was used already.")


def invalid_action_not_found(action: str, version: str) -> ApiError:
    return ApiError(
        "InvalidAction.NotFound",
        f"Specified api is not found, please check your url and method. Action {action!r} does not exist "
        f"in version {version!r}.",
        404,
    )


def invalid_version(version: str) -> ApiError:
    return ApiError(
        "InvalidVersion",
        f"Specified parameter Version is not valid. Supported versions are 2014-05-26 (ECS) and "
        f"2016-04-28 (VPC); got {version!r}.",
    )


def throttling(retry_after: int) -> ApiError:
    error = ApiError("Throttling", "Request was denied due to request throttling.", 400)
    error.retry_after = retry_after
    return error


def internal_error(message: str = "The request processing has failed due to some unknown error.") -> ApiError:
    return ApiError("InternalError", message, 500)


def service_unavailable(
    message: str = "The request has failed due to a temporary failure of the server.",
) -> ApiError:
    return ApiError("ServiceUnavailable", message, 503)


def dry_run_operation() -> ApiError:
    return ApiError("DryRunOperation", "Request validation has been passed with DryRun flag set.")


def request_entity_too_large(message: str) -> ApiError:
    return ApiError("RequestEntityTooLarge", message, 413)


def unsupported_http_method(message: str) -> ApiError:
    return ApiError("UnsupportedHTTPMethod", message, 405)


def forbidden(message: str) -> ApiError:
    return ApiError("Forbidden", message, 403)


# ---- Codes built at run time ---------------------------------------------------------------------


def invalid_id_not_found(
    kind: str, resource_id: str = "", *, message: str = "", http_status: int = 404
) -> ApiError:
    """Invalid<Kind>Id.NotFound, for the resources looked up by kind (nubes.domain.common.owned)."""
    return ApiError(
        f"Invalid{kind}Id.NotFound",
        message or f"The specified {kind}Id {resource_id!r} does not exist.",
        http_status,
    )


def invalid_malformed(field: str, message: str) -> ApiError:
    """Invalid<Field>.Malformed: names, sequences and CIDR fields checked by one rule for many fields."""
    return ApiError(f"Invalid{field}.Malformed", message)


def invalid_category_value_not_supported(kind: str, message: str) -> ApiError:
    """Invalid<SystemDisk|DataDisk>Category.ValueNotSupported, RunInstances' disk categories."""
    return ApiError(f"Invalid{kind}Category.ValueNotSupported", message)


def invalid_group_id_mismatch(direction: str, message: str) -> ApiError:
    """Invalid<Source|Dest>GroupId.Mismatch, a security group rule's peer in another VPC."""
    return ApiError(f"Invalid{direction}GroupId.Mismatch", message)


def dependency_violation(kind: str = "", *, message: str, http_status: int = 400) -> ApiError:
    """DependencyViolation.<kind>, or plain DependencyViolation: something still depends on the
    resource (400; DetachDisk of a disk attached elsewhere answers 403)."""
    return ApiError(f"DependencyViolation.{kind}" if kind else "DependencyViolation", message, http_status)


# ---- Any action ----------------------------------------------------------------------------------


def idempotent_parameter_mismatch(
    message: str = "The ClientToken was used before with other parameters; use a new ClientToken.",
) -> ApiError:
    return ApiError("IdempotentParameterMismatch", message)


def invalid_description_malformed(message: str) -> ApiError:
    return ApiError("InvalidDescription.Malformed", message)


def invalid_filter_key_not_found(message: str) -> ApiError:
    return ApiError("InvalidFilterKey.NotFound", message)


def invalid_filter_value(message: str) -> ApiError:
    return ApiError("InvalidFilterValue", message)


def invalid_param_type(message: str) -> ApiError:
    return ApiError("InvalidParam.Type", message)


def invalid_parameter_not_supported(name: str, detail: str = "") -> ApiError:
    """A parameter of the official API that nubes does not do yet (or not with this value): it is
    refused, never accepted and dropped."""
    reason = detail or "nubes does not support it yet."
    return ApiError(
        "InvalidParameter.NotSupported", f'The parameter "{name}" is not supported by nubes: {reason}'
    )


def invalid_parameter_too_many_data_queried(
    message: str = "Too many data queried: (EndTime - StartTime) / Period must not exceed 400.",
) -> ApiError:
    """The monitoring actions (DescribeInstanceMonitorData and friends): more than 400 points."""
    return ApiError("InvalidParameter.TooManyDataQueried", message)


def invalid_parameter_conflict(message: str) -> ApiError:
    return ApiError("InvalidParameter.Conflict", message)


def invalid_parameter_mismatch(message: str, *, http_status: int = 400) -> ApiError:
    """400 in RunInstances (vSwitch and zone); ResetDisk answers 403 (snapshot of another disk)."""
    return ApiError("InvalidParameter.Mismatch", message, http_status)


def invalid_parameter_next_token(
    message: str = (
        'The specified parameter "NextToken" is not valid. '
        "It was not returned by a previous call of this action."
    ),
) -> ApiError:
    return ApiError("InvalidParameter.NextToken", message)


# ---- Regions and zones ---------------------------------------------------------------------------


def invalid_region_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidRegionId.NotFound", message, 404)


def invalid_zone_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidZoneId.NotFound", message, 404)


# ---- Tags ----------------------------------------------------------------------------------------


def invalid_resource_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidResourceId.NotFound", message, 404)


def invalid_resource_group_not_found(
    message: str = "The ResourceGroup provided does not exist in our records.",
) -> ApiError:
    return ApiError("InvalidResourceGroup.NotFound", message, 404)


def invalid_resource_type_not_found(message: str) -> ApiError:
    return ApiError("InvalidResourceType.NotFound", message)


def invalid_tag_count(message: str = "The specified tags are beyond the permitted range.") -> ApiError:
    return ApiError("InvalidTagCount", message)


def invalid_tag_count_limit_exceeded(message: str) -> ApiError:
    return ApiError("InvalidTagCount.LimitExceeded", message)


def invalid_tag_key_malformed(
    message: str = (
        "A tag key is 1 to 128 characters and does not start with aliyun, acs:, http:// or https://."
    ),
) -> ApiError:
    return ApiError("InvalidTagKey.Malformed", message)


def invalid_tag_value_malformed(
    message: str = "A tag value is at most 128 characters and does not start with acs:, http:// or https://.",
) -> ApiError:
    return ApiError("InvalidTagValue.Malformed", message)
