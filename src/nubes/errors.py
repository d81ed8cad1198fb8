"""Every ECS error code nubes answers with, as a named constructor; any layer raises them.

A failure a client can see is an ApiError: a code, an HTTP status and a message. Anything
else escaping an action is a bug and is answered as InternalError (500).

Naming: a constructor is the snake_case of its code, dots as underscores and a run of
capitals as one word ("IncorrectInstanceStatus" -> incorrect_instance_status,
"InvalidVSwitchId.IpNotEnough" -> invalid_vswitch_id_ip_not_enough). A code built at run
time has one constructor named for the code without its varying part, which it takes as
its first argument ("Invalid<Kind>Id.NotFound" -> invalid_id_not_found(kind, ...)); the
sub-codes of MissingParameter and DependencyViolation are made that way too. A constructor
takes the message, with ECS's text as the default where that is fixed, and has the code's
HTTP status; `http_status` is a parameter only where ECS answers the code with several.

This module imports nothing from nubes; the wire rendering of an ApiError is nubes.api.app's."""

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


# ---- Instances -----------------------------------------------------------------------------------


def incorrect_instance_status(message: str, *, http_status: int = 403) -> ApiError:
    """403 in most actions; AttachDisk documents 400."""
    return ApiError("IncorrectInstanceStatus", message, http_status)


def invalid_instance_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidInstanceId.NotFound", message, 404)


def invalid_instance_status_not_running(message: str) -> ApiError:
    return ApiError("InvalidInstanceStatus.NotRunning", message, 403)


def invalid_instance_type_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidInstanceType.ValueNotSupported", message)


def invalid_instance_type_value_unauthorized(message: str) -> ApiError:
    return ApiError("InvalidInstanceType.ValueUnauthorized", message)


def invalid_operation_deletion_protection(message: str) -> ApiError:
    return ApiError("InvalidOperation.DeletionProtection", message, 403)


def operation_denied_no_stock(message: str) -> ApiError:
    return ApiError("OperationDenied.NoStock", message, 403)


def invalid_parameter_amount(message: str = "Amount must be from 1 to 100.") -> ApiError:
    return ApiError("InvalidParameter.Amount", message)


def invalid_parameter_min_amount(message: str = "MinAmount must be from 1 to Amount.") -> ApiError:
    return ApiError("InvalidParameter.MinAmount", message)


def invalid_parameter_private_ip_address(
    message: str = "PrivateIpAddress can be given only when Amount is 1.",
) -> ApiError:
    return ApiError("InvalidParameter.PrivateIpAddress", message)


def invalid_host_name_malformed(
    message: str = (
        "The host name must be 2 to 64 characters of letters, digits, periods (.) and hyphens (-), "
        "starting and ending with a letter or digit."
    ),
) -> ApiError:
    return ApiError("InvalidHostName.Malformed", message)


def invalid_host_names_count_mismatch(
    message: str = "Give one HostNames.N per instance (Amount).",
) -> ApiError:
    return ApiError("InvalidHostNames.CountMismatch", message)


def invalid_password_malformed(
    message: str = (
        "The password must be 8 to 30 characters long and contain at least three of: upper-case letters, "
        "lower-case letters, digits, and the special characters ()`~!@#$%^&*-_+=|{}[]:;'<>,.?/"
    ),
) -> ApiError:
    return ApiError("InvalidPassword.Malformed", message)


def invalid_user_data_base64_format_invalid(message: str = "UserData must be Base64-encoded.") -> ApiError:
    return ApiError("InvalidUserData.Base64FormatInvalid", message)


def invalid_user_data_size_exceeded(
    message: str = "UserData must be at most 32 KB before encoding.",
) -> ApiError:
    return ApiError("InvalidUserData.SizeExceeded", message)


def invalid_auto_release_time_malformed(message: str) -> ApiError:
    return ApiError("InvalidAutoReleaseTime.Malformed", message)


def invalid_data_disk_count_limit_exceeded(
    message: str = "At most 16 data disks can be created at launch.",
) -> ApiError:
    return ApiError("InvalidDataDiskCount.LimitExceeded", message)


def invalid_data_disk_size_value_not_supported(message: str, *, http_status: int = 400) -> ApiError:
    """400 in RunInstances; 403 for a cloud_auto data disk's size (CreateDisk, ResizeDisk)."""
    return ApiError("InvalidDataDiskSize.ValueNotSupported", message, http_status)


def invalid_system_disk_category_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidSystemDiskCategory.ValueNotSupported", message)


def invalid_system_disk_size(message: str) -> ApiError:
    return ApiError("InvalidSystemDiskSize", message)


def invalid_system_disk_size_less_than_image_size(message: str) -> ApiError:
    return ApiError("InvalidSystemDiskSize.LessThanImageSize", message)


def invalid_system_disk_size_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidSystemDiskSize.ValueNotSupported", message)


# ---- Deployment sets -----------------------------------------------------------------------------


def invalid_deployment_set_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidDeploymentSetId.NotFound", message, 404)


def quota_exceed_deployment_set(message: str) -> ApiError:
    return ApiError("QuotaExceed.DeploymentSet", message)


# ---- Key pairs -----------------------------------------------------------------------------------


def invalid_key_pair_name_malformed(
    message: str = (
        "The key pair name must be 2 to 128 characters, start with a letter, and contain only letters, "
        "digits, colons (:), underscores (_), periods (.) and hyphens (-)."
    ),
) -> ApiError:
    return ApiError("InvalidKeyPairName.Malformed", message)


def invalid_key_pair_name_not_found(message: str) -> ApiError:
    return ApiError("InvalidKeyPairName.NotFound", message, 404)


def invalid_public_key_body_malformed(
    message: str = (
        "The PublicKeyBody must be an OpenSSH public key such as 'ssh-rsa AAAA...' or 'ssh-ed25519 AAAA...'."
    ),
) -> ApiError:
    return ApiError("InvalidPublicKeyBody.Malformed", message)


def key_pair_already_exist(message: str) -> ApiError:
    return ApiError("KeyPair.AlreadyExist", message)


def quota_exceed_key_pair(message: str) -> ApiError:
    return ApiError("QuotaExceed.KeyPair", message, 403)


# ---- Disks ---------------------------------------------------------------------------------------


def incorrect_disk_status(message: str) -> ApiError:
    return ApiError("IncorrectDiskStatus", message, 403)


def invalid_disk_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidDiskId.NotFound", message, 404)


def invalid_disk_already_detached(message: str) -> ApiError:
    return ApiError("InvalidDisk.AlreadyDetached", message, 404)


def invalid_disk_in_use(message: str) -> ApiError:
    return ApiError("InvalidDisk.InUse", message, 404)


def invalid_disk_category_not_supported(message: str) -> ApiError:
    return ApiError("InvalidDiskCategory.NotSupported", message, 403)


def invalid_disk_category_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidDiskCategory.ValueNotSupported", message)


def invalid_disk_size(message: str) -> ApiError:
    return ApiError("InvalidDiskSize", message, 403)


def invalid_disk_size_not_supported(message: str) -> ApiError:
    return ApiError("InvalidDiskSize.NotSupported", message, 403)


def invalid_disk_size_too_large(message: str) -> ApiError:
    return ApiError("InvalidDiskSize.TooLarge", message, 403)


def invalid_disk_size_too_small(message: str) -> ApiError:
    return ApiError("InvalidDiskSize.TooSmall", message, 403)


def invalid_performance_level_malformed(message: str) -> ApiError:
    return ApiError("InvalidPerformanceLevel.Malformed", message)


def operation_denied_performance_level_not_match(message: str) -> ApiError:
    return ApiError("OperationDenied.PerformanceLevelNotMatch", message, 403)


def invalid_provisioned_iops_limit_exceed(message: str) -> ApiError:
    return ApiError("InvalidProvisionedIops.LimitExceed", message)


def provisioned_iops_for_disk_category_unsupported(message: str) -> ApiError:
    return ApiError("ProvisionedIopsForDiskCategoryUnsupported", message)


def bursting_enabled_for_disk_category_unsupported(message: str) -> ApiError:
    return ApiError("BurstingEnabledForDiskCategoryUnsupported", message)


def invalid_bursting_enabled_disk_size_too_small(message: str) -> ApiError:
    return ApiError("InvalidBurstingEnabled.DiskSizeTooSmall", message)


def instance_disk_number_limit_exceed(message: str) -> ApiError:
    return ApiError("InstanceDiskNumber.LimitExceed", message, 403)


def disk_creating_snapshot(message: str) -> ApiError:
    return ApiError("DiskCreatingSnapshot", message, 403)


def disk_type_violation(
    message: str = "The specified disk is a system disk and cannot support the operation.",
) -> ApiError:
    return ApiError("DiskTypeViolation", message, 403)


def resources_not_in_same_zone(message: str) -> ApiError:
    return ApiError("ResourcesNotInSameZone", message, 403)


def invalid_source_snapshot(message: str) -> ApiError:
    return ApiError("InvalidSourceSnapshot", message, 403)


def invalid_param_zone_id_and_instance_id_conflict(
    message: str = "The specified parameter 'ZoneId' and 'InstanceId' are not blank at the same time.",
) -> ApiError:
    return ApiError("InvalidParam.ZoneIdAndInstanceId.Conflict", message, 403)


def invalid_parameter_bootable(
    message: str = "Attaching a data disk as the system disk is not supported.",
) -> ApiError:
    return ApiError("InvalidParameter.Bootable", message)


def invalid_parameter_encrypted(message: str) -> ApiError:
    return ApiError("InvalidParameter.Encrypted", message)


def invalid_parameter_multi_attach(
    message: str = "Multi-attach disks are not supported by nubes.",
) -> ApiError:
    return ApiError("InvalidParameter.MultiAttach", message)


# ---- Snapshots and automatic snapshot policies ---------------------------------------------------


def incorrect_snapshot_status(message: str) -> ApiError:
    return ApiError("IncorrectSnapshotStatus", message, 403)


def invalid_snapshot_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidSnapshotId.NotFound", message, 404)


def invalid_snapshot_id_not_ready(message: str) -> ApiError:
    return ApiError("InvalidSnapshotId.NotReady", message, 403)


def invalid_snapshot_name_malformed(message: str = "A snapshot name cannot start with 'auto'.") -> ApiError:
    return ApiError("InvalidSnapshotName.Malformed", message)


def quota_exceed_snapshot(message: str) -> ApiError:
    return ApiError("QuotaExceed.Snapshot", message, 403)


def snapshot_created_disk(message: str) -> ApiError:
    return ApiError("SnapshotCreatedDisk", message, 403)


def snapshot_created_image(message: str) -> ApiError:
    return ApiError("SnapshotCreatedImage", message, 403)


def parameter_invalid(message: str, *, http_status: int = 403) -> ApiError:
    """The automatic snapshot policy actions' code for bad input (403) and for a policy that is
    not there (404)."""
    return ApiError("ParameterInvalid", message, http_status)


def auto_snapshot_policy_quota_exceed(
    message: str = "The maximum number of automatic snapshot policy has been reached.",
) -> ApiError:
    return ApiError("AutoSnapshotPolicy.QuotaExceed", message, 403)


def invalid_parameter_copied_snapshots_retention_days(
    message: str = "The specified CopiedSnapshotsRetentionDays is invalid.",
) -> ApiError:
    return ApiError("InvalidParameter.CopiedSnapshotsRetentionDays", message, 403)


def invalid_parameter_target_copy_regions(
    message: str = "The specified TargetCopyRegions is invalid.",
) -> ApiError:
    return ApiError("InvalidParameter.TargetCopyRegions", message, 403)


# ---- Images --------------------------------------------------------------------------------------


def incorrect_image_status(message: str) -> ApiError:
    return ApiError("IncorrectImageStatus", message, 403)


def invalid_image_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidImageId.NotFound", message, 404)


def invalid_image_id_not_available(message: str) -> ApiError:
    return ApiError("InvalidImageId.NotAvailable", message)


def invalid_image_id_creating(message: str) -> ApiError:
    return ApiError("InvalidImageId.Creating", message)


def invalid_image_id_in_use(message: str) -> ApiError:
    return ApiError("InvalidImageId.InUse", message, 403)


def invalid_image_family_not_found(message: str) -> ApiError:
    return ApiError("InvalidImageFamily.NotFound", message, 404)


def invalid_image_name_duplicated(message: str) -> ApiError:
    return ApiError("InvalidImageName.Duplicated", message, 403)


def invalid_account_not_found(message: str) -> ApiError:
    return ApiError("InvalidAccount.NotFound", message, 404)


def quota_exceed_share_image_user(message: str) -> ApiError:
    return ApiError("QuotaExceed.ShareImageUser", message, 403)


def invalid_parameter_add_account(message: str = "An image cannot be shared with its owner.") -> ApiError:
    return ApiError("InvalidParameter.AddAccount", message)


def invalid_parameter_is_public(
    message: str = "Publishing images to every account is not supported by nubes.",
) -> ApiError:
    return ApiError("InvalidParameter.IsPublic", message)


def invalid_parameter_snapshot_id(message: str) -> ApiError:
    return ApiError("InvalidParameter.SnapshotId", message)


def invalid_parameter_format(message: str) -> ApiError:
    return ApiError("InvalidParameter.Format", message)


def invalid_parameter_image_format(message: str) -> ApiError:
    return ApiError("InvalidParameter.ImageFormat", message)


def invalid_parameter_disk_device_mapping(
    message: str = "nubes imports the system disk only (one mapping).",
) -> ApiError:
    return ApiError("InvalidParameter.DiskDeviceMapping", message)


def invalid_oss_bucket_malformed(message: str) -> ApiError:
    return ApiError("InvalidOSSBucket.Malformed", message)


def invalid_oss_object_forbidden(message: str) -> ApiError:
    return ApiError("InvalidOSSObject.Forbidden", message, 403)


def invalid_oss_object_malformed(message: str) -> ApiError:
    return ApiError("InvalidOSSObject.Malformed", message)


def invalid_oss_object_not_found(message: str) -> ApiError:
    return ApiError("InvalidOSSObject.NotFound", message, 404)


def invalid_oss_object_not_loopback(
    message: str = "An image URL must point at the loopback interface (127.0.0.1) of the nubes host.",
) -> ApiError:
    return ApiError("InvalidOSSObject.NotLoopback", message)


# ---- Security groups -----------------------------------------------------------------------------


def authorization_limit_exceed(message: str) -> ApiError:
    return ApiError("AuthorizationLimitExceed", message)


def invalid_ip_protocol_malformed(message: str) -> ApiError:
    return ApiError("InvalidIpProtocol.Malformed", message)


def invalid_nic_type_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidNicType.ValueNotSupported", message)


def invalid_permission_duplicate(message: str) -> ApiError:
    return ApiError("InvalidPermission.Duplicate", message)


def invalid_policy_malformed(message: str) -> ApiError:
    return ApiError("InvalidPolicy.Malformed", message)


def invalid_port_range_malformed(message: str) -> ApiError:
    return ApiError("InvalidPortRange.Malformed", message)


def invalid_priority_malformed(message: str) -> ApiError:
    return ApiError("InvalidPriority.Malformed", message)


def invalid_parameter_group_not_supported(message: str) -> ApiError:
    return ApiError("InvalidParameter.GroupNotSupported", message)


def invalid_parameter_ipv6_not_supported(
    message: str = "IPv6 security group rules are not supported by nubes yet.",
) -> ApiError:
    return ApiError("InvalidParameter.Ipv6NotSupported", message)


def invalid_parameter_port_range_list_not_supported(
    message: str = "Port lists are not supported by nubes yet.",
) -> ApiError:
    return ApiError("InvalidParameter.PortRangeListNotSupported", message)


def invalid_parameter_prefix_list_not_supported(
    message: str = "Prefix lists are not supported by nubes yet.",
) -> ApiError:
    return ApiError("InvalidParameter.PrefixListNotSupported", message)


def invalid_security_group_id_not_in_this_group(message: str) -> ApiError:
    return ApiError("InvalidSecurityGroupId.NotInThisGroup", message, 404)


def invalid_security_group_id_vpc_mismatch(message: str) -> ApiError:
    return ApiError("InvalidSecurityGroupId.VpcMismatch", message)


def invalid_security_group_ids_limit_exceeded(message: str) -> ApiError:
    return ApiError("InvalidSecurityGroupIds.LimitExceeded", message)


def invalid_security_group_rule_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidSecurityGroupRuleId.NotFound", message, 404)


def invalid_security_group_type_mixed(message: str) -> ApiError:
    return ApiError("InvalidSecurityGroupType.Mixed", message)


def quota_exceed_security_group(message: str) -> ApiError:
    return ApiError("QuotaExceed.SecurityGroup", message)


# ---- Network interfaces --------------------------------------------------------------------------


def invalid_network_interface_id_already_in_security_group(message: str) -> ApiError:
    return ApiError("InvalidNetworkInterfaceId.AlreadyInSecurityGroup", message)


def invalid_operation_invalid_eni_state(message: str) -> ApiError:
    return ApiError("InvalidOperation.InvalidEniState", message)


def invalid_operation_last_security_group(
    message: str = "A network interface must stay in at least one security group.",
) -> ApiError:
    return ApiError("InvalidOperation.LastSecurityGroup", message)


# ---- VPCs, vSwitches, addresses and routes -------------------------------------------------------


def incorrect_vpc_status(message: str) -> ApiError:
    return ApiError("IncorrectVpcStatus", message)


def incorrect_vswitch_status(message: str) -> ApiError:
    return ApiError("IncorrectVSwitchStatus", message)


def invalid_cidr_block_duplicate(message: str) -> ApiError:
    return ApiError("InvalidCidrBlock.Duplicate", message)


def invalid_cidr_block_malformed(message: str) -> ApiError:
    return ApiError("InvalidCidrBlock.Malformed", message)


def invalid_cidr_block_not_in_vpc(message: str) -> ApiError:
    return ApiError("InvalidCidrBlock.NotInVpc", message)


def invalid_cidr_block_overlapped(message: str) -> ApiError:
    return ApiError("InvalidCidrBlock.Overlapped", message)


def invalid_destination_cidr_block_conflict(message: str) -> ApiError:
    return ApiError("InvalidDestinationCidrBlock.Conflict", message)


def invalid_destination_cidr_block_malformed(message: str) -> ApiError:
    return ApiError("InvalidDestinationCidrBlock.Malformed", message)


def invalid_next_hop_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidNextHopId.NotFound", message, 404)


def invalid_next_hop_type_not_supported(message: str) -> ApiError:
    return ApiError("InvalidNextHopType.NotSupported", message)


def invalid_private_ip_address_duplicated(message: str) -> ApiError:
    return ApiError("InvalidPrivateIpAddress.Duplicated", message)


def invalid_private_ip_address_malformed(message: str) -> ApiError:
    return ApiError("InvalidPrivateIpAddress.Malformed", message)


def invalid_private_ip_address_mismatch(message: str) -> ApiError:
    return ApiError("InvalidPrivateIpAddress.Mismatch", message)


def invalid_private_ip_address_reserved(message: str) -> ApiError:
    return ApiError("InvalidPrivateIpAddress.Reserved", message)


def invalid_route_entry_not_found(message: str = "The specified route entry does not exist.") -> ApiError:
    return ApiError("InvalidRouteEntry.NotFound", message, 404)


def invalid_route_table_id_not_found(message: str) -> ApiError:
    return ApiError("InvalidRouteTableId.NotFound", message, 404)


def invalid_vswitch_id_ip_not_enough(message: str) -> ApiError:
    return ApiError("InvalidVSwitchId.IpNotEnough", message)


def operation_unsupported_cidr_block(
    message: str = "Changing the CIDR block of a VPC is not supported by nubes; create a new VPC.",
) -> ApiError:
    return ApiError("OperationUnsupported.CidrBlock", message)


def quota_exceeded_route_entry(
    message: str = "The route table has reached its quota of custom entries.",
) -> ApiError:
    return ApiError("QuotaExceeded.RouteEntry", message)


def quota_exceeded_vswitch(message: str) -> ApiError:
    return ApiError("QuotaExceeded.VSwitch", message)


def quota_exceeded_vpc(message: str) -> ApiError:
    return ApiError("QuotaExceeded.Vpc", message)
