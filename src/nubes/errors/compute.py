"""ECS error codes: Instances, deployment sets and key pairs."""

from __future__ import annotations

from nubes.errors.base import ApiError

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


def invalid_operation_hibernate_not_configured(message: str) -> ApiError:
    """StopInstance Hibernate=true of an instance created without HibernationOptions.Configured."""
    return ApiError("InvalidOperation.HibernateNotConfigured", message, 403)


def operation_denied_no_stock(message: str) -> ApiError:
    return ApiError("OperationDenied.NoStock", message, 403)


def invalid_ram_role_not_found(message: str) -> ApiError:
    return ApiError("InvalidRamRole.NotFound", message, 404)


def charge_type_violation(message: str) -> ApiError:
    return ApiError("ChargeTypeViolation", message, 403)


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


def incorrect_vnc_password_malformed(
    message: str = (
        "The specified parameter VncPassword must be 6 characters, including uppercase characters, "
        "lowercase characters and numbers."
    ),
) -> ApiError:
    return ApiError("IncorrectVncPassword.Malformed", message)


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


def deployment_set_modification_failed(message: str) -> ApiError:
    return ApiError("DeploymentSet.ModificationFailed", message, 403)


def quota_exceed_deployment_set(message: str) -> ApiError:
    return ApiError("QuotaExceed.DeploymentSet", message)


# ---- Account quotas (DescribeAccountAttributes) --------------------------------------------------


def quota_exceed_elastic_quota(message: str) -> ApiError:
    return ApiError("QuotaExceed.ElasticQuota", message, 403)


def quota_exceed_disk_capacity(message: str) -> ApiError:
    return ApiError("QuotaExceed.DiskCapacity", message)


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


# ---- Launch templates ----------------------------------------------------------------------------


def invalid_launch_template_not_found(template_id: str = "", name: str = "") -> ApiError:
    return ApiError(
        "InvalidLaunchTemplate.NotFound",
        f'The specified LaunchTemplateId "{template_id}" LaunchTemplateName "{name}" is not found.',
        404,
    )


def invalid_launch_template_version_not_found(template_id: str, version: object) -> ApiError:
    return ApiError(
        "InvalidLaunchTemplateVersion.NotFound",
        f'The specified LaunchTemplateId "{template_id}" Version "{version}" is not found.',
        404,
    )


def launch_template_limit_exceed(limit: int) -> ApiError:
    return ApiError(
        "LaunchTemplateLimitExceed", f"The maximum number of templates is exceeded: {limit} per region.", 403
    )


def launch_template_version_limit_exceed(limit: int) -> ApiError:
    return ApiError(
        "LaunchTemplateVersionLimitExceed",
        f"The maximum number of template's versions is exceeded: {limit} per template.",
        403,
    )


def launch_template_name_duplicated(name: str) -> ApiError:
    return ApiError(
        "LaunchTemplateName.Duplicated", f'The specified LaunchTemplateName "{name}" already exist.', 403
    )


def invalid_operation_delete_default_version(template_id: str, version: int) -> ApiError:
    return ApiError(
        "InvalidOperation.DeleteDefaultVersion",
        f"Version {version} is the default version of {template_id}: it cannot be deleted.",
        403,
    )
