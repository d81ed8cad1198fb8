"""The rule that no documented parameter is dropped: undeclared catalog parameters are refused by
name, and the owner parameters must name the caller."""

from __future__ import annotations

import pytest

from nubes.api.params import Boolean, String, Struct, StructList
from nubes.api.unsupported import catalog_name, check_owner, refuse_unsupported, refused_names
from nubes.domain.accounts import Principal
from nubes.errors import ApiError


def test_catalog_names_replace_indexes_only() -> None:
    assert catalog_name("DataDisk.12.Encrypted") == "DataDisk.N.Encrypted"
    assert catalog_name("NetworkInterface.1.Ipv6Address.3") == "NetworkInterface.N.Ipv6Address.N"
    assert catalog_name("Tag.1.Key") == "Tag.N.Key"
    assert catalog_name("V2Name") == "V2Name"


def test_refused_names_are_the_catalogs_less_the_declared_and_owner_ones() -> None:
    declared = (String("InstanceId"), Boolean("ForceStop"), Boolean("DryRun"))
    refused = refused_names("ecs", "StopInstance", declared)
    assert refused == {"ConfirmStop", "Hibernate", "StoppedMode"}
    nested = (StructList("DataDisk", [String("Size")]), Struct("SystemDisk", [String("Size")]))
    run = refused_names("ecs", "RunInstances", nested)
    assert "DataDisk.N.Encrypted" in run and "SystemDisk.Encrypted" in run
    assert "DataDisk.N.Size" not in run and "OwnerId" not in run


def test_a_refused_parameter_is_named_and_an_empty_one_is_absent() -> None:
    refused = frozenset({"DataDisk.N.Encrypted", "Hibernate"})
    refuse_unsupported(refused, {"InstanceId": "i-1", "Hibernate": ""})
    with pytest.raises(ApiError) as caught:
        refuse_unsupported(refused, {"DataDisk.2.Encrypted": "true"})
    assert caught.value.code == "InvalidParameter.NotSupported"
    assert '"DataDisk.2.Encrypted"' in caught.value.message


def test_owner_parameters_must_name_the_caller() -> None:
    caller = Principal(account_id=7, account_name="alice", uid="1234567890")
    check_owner(caller, {"OwnerId": "1234567890", "ResourceOwnerAccount": "alice", "OwnerAccount": ""})
    for name, value in (("OwnerId", "999"), ("ResourceOwnerId", "1"), ("OwnerAccount", "bob")):
        with pytest.raises(ApiError) as caught:
            check_owner(caller, {name: value})
        assert caught.value.code == "InvalidParameter" and name in caught.value.message
