"""ECS error codes: Disks, snapshots, automatic snapshot policies and images."""

from __future__ import annotations

from nubes.errors.base import ApiError

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


def operation_denied_encrypted_image(message: str) -> ApiError:
    """An encrypted image is never shared nor exported: its key is its owner's alone, and an
    export would write its content in the clear."""
    return ApiError("OperationDenied.EncryptedImage", message, 403)


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


def invalid_task_id_task_action_not_support(
    message: str = "The specified task action not support.",
) -> ApiError:
    return ApiError("InvalidTaskId.TaskActionNotSupport", message, 403)


def invalid_task_id_incorrect_task_status(message: str = "The specified task status is invalid.") -> ApiError:
    return ApiError("InvalidTaskId.IncorrectTaskStatus", message, 403)
