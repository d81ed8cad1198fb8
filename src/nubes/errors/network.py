"""ECS error codes: Security groups, network interfaces, VPCs, vSwitches, addresses and routes."""

from __future__ import annotations

from nubes.errors.base import ApiError

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


def invalid_security_group_rule_rule_not_exist(message: str) -> ApiError:
    return ApiError("InvalidSecurityGroupRule.RuleNotExist", message, 404)


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


def invalid_operation_invalid_ecs_state(message: str) -> ApiError:
    return ApiError("InvalidOperation.InvalidEcsState", message)


def invalid_operation_detach_primary_eni_not_allowed(
    message: str = "The primary network interface of an instance cannot be detached.",
) -> ApiError:
    return ApiError("InvalidOperation.DetachPrimaryEniNotAllowed", message)


def invalid_operation_invalid_eni_type(message: str) -> ApiError:
    return ApiError("InvalidOperation.InvalidEniType", message, 403)


def eni_per_instance_limit_exceeded(message: str) -> ApiError:
    return ApiError("EniPerInstanceLimitExceeded", message, 403)


def invalid_operation_availability_zone_mismatch(message: str) -> ApiError:
    return ApiError("InvalidOperation.AvailabilityZoneMismatch", message, 403)


def invalid_operation_vpc_mismatch(message: str) -> ApiError:
    return ApiError("InvalidOperation.VpcMismatch", message, 403)


def invalid_operation_ipv4_count_exceeded(message: str) -> ApiError:
    return ApiError("InvalidOperation.Ipv4CountExceeded", message, 403)


def invalid_ip_ip_repeated(message: str) -> ApiError:
    return ApiError("InvalidIp.IpRepeated", message, 403)


def invalid_ip_ip_unassigned(message: str) -> ApiError:
    return ApiError("InvalidIp.IpUnassigned", message, 403)


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


def incorrect_route_table_type(
    message: str = "This action applies to custom route tables only, not to a VPC's system table.",
) -> ApiError:
    return ApiError("IncorrectRouteTableType", message)


def incorrect_route_table_status_route_entry_exist(
    message: str = "You cannot delete the specified route table because it still has custom route entry.",
) -> ApiError:
    return ApiError("IncorrectRouteTableStatus.RouteEntryExist", message)


def resource_already_associated_route_table(message: str) -> ApiError:
    return ApiError("ResourceAlreadyAssociated.RouteTable", message)


def resource_not_associated_route_table(message: str) -> ApiError:
    return ApiError("ResourceNotAssociated.RouteTable", message)


def quota_exceeded_route_table(message: str) -> ApiError:
    return ApiError("QuotaExceeded.RouteTable", message)


def invalid_vswitch_id_mismatch(message: str) -> ApiError:
    return ApiError("InvalidVSwitchId.Mismatch", message)


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


# ---- Public addresses: EIPs and public IPs --------------------------------------------------------


def incorrect_eip_status(
    message: str = "Current elastic IP status does not support this operation.",
) -> ApiError:
    return ApiError("IncorrectEipStatus", message)


def insufficient_public_ip(message: str) -> ApiError:
    """ECS's answer when no public address can be given to an instance (RunInstances with
    InternetMaxBandwidthOut, AllocatePublicIpAddress): the operator's ranges are full or unset."""
    return ApiError("InsufficientPublicIp", message, 403)


def invalid_association_duplicated(message: str = "Specified instance already is associated.") -> ApiError:
    return ApiError("InvalidAssociation.Duplicated", message)


def invalid_instance_type_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidInstanceType.ValueNotSupported", message)


def invalid_internet_max_bandwidth_in_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidInternetMaxBandwidthIn.ValueNotSupported", message)


def invalid_internet_max_bandwidth_out_value_not_supported(message: str) -> ApiError:
    return ApiError("InvalidInternetMaxBandwidthOut.ValueNotSupported", message)


def ip_in_use(message: str = "The specified IP is already in use.") -> ApiError:
    return ApiError("IpInUse", message, 403)


def operation_denied(message: str, *, http_status: int = 403) -> ApiError:
    """403 in ECS (AllocatePublicIpAddress, ModifyInstanceNetworkSpec); the VPC API answers 400."""
    return ApiError("OperationDenied", message, http_status)


def quota_exceeded_eip(message: str = "Elastic IP address quota exceeded") -> ApiError:
    return ApiError("QuotaExceeded.Eip", message)


def reserve_ip_fail(message: str) -> ApiError:
    """The VPC API's answer when no address can be reserved for a new EIP (ranges full or unset)."""
    return ApiError("ReserveIpFail", message)


# ---- NAT gateways and their SNAT and DNAT (forward) entries ---------------------------------------


def forbidden_external_ip_used_in_snat_table(message: str) -> ApiError:
    return ApiError("Forbidden.ExternalIp.UsedInSnatTable", message)


def forbidden_ip_used_in_forward_table(message: str) -> ApiError:
    return ApiError("Forbidden.IpUsedInForwardTable", message)


def forbidden_snat_entry_count_limited(message: str) -> ApiError:
    return ApiError("Forbidden.SnatEntryCountLimited", message)


def forbidden_source_vswitch_id_duplicated(message: str) -> ApiError:
    return ApiError("Forbidden.SourceVSwitchId.Duplicated", message)


def forbidden_internal_ip_out_of_vpc_cidr(message: str) -> ApiError:
    return ApiError("Forbidden.InternalIpOutOfVpcCIDR", message)


def invalid_external_ip_not_found(message: str) -> ApiError:
    return ApiError("InvalidExternalIp.NotFound", message, 404)


def invalid_ip_not_in_natgw(message: str) -> ApiError:
    return ApiError("InvalidIp.NotInNatgw", message)


def invalid_ip_status_has_been_used_by_snat_table(message: str) -> ApiError:
    return ApiError("InvalidIpStatus.HasBeenUsedBySnatTable", message)


def invalid_ip_status_has_been_used_by_forward_entry(message: str) -> ApiError:
    return ApiError("InvalidIpStatus.HasBeenUsedByForwardEntry", message)


def invalid_protocal_value_not_supported(message: str) -> ApiError:
    """ECS spells it so ("Protocal")."""
    return ApiError("InvalidProtocal.ValueNotSupported", message)


def invalid_snat_ip_not_found(message: str) -> ApiError:
    return ApiError("InvalidSnatIp.NotFound", message, 404)


def operation_unsupported_cidr_conflict(message: str) -> ApiError:
    return ApiError("OperationUnsupported.CidrConflict", message)


def quota_exceeded(message: str) -> ApiError:
    """ECS answers a full DNAT table with a bare QuotaExceeded."""
    return ApiError("QuotaExceeded", message)


def quota_exceeded_nat_gateway(message: str) -> ApiError:
    return ApiError("QuotaExceeded.NatGateway", message)
