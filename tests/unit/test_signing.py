"""Signatures captured from the real, unmodified clients (shared/api/client_wire_samples.md)
must verify with our pure functions, byte for byte."""

from urllib.parse import parse_qsl

from nubes.api import signing

SECRET = "testSecret"

LIBCLOUD_GET_QUERY = (
    "Action=CreateInstance&RegionId=cn-hangzhou&ImageId=ubuntu_22_04_x64_20G_alibase_20240101.vhd"
    "&InstanceType=ecs.g6.large&InstanceName=probe+vm&SecurityGroupId=sg-test1&InternetChargeType=PayByTraffic"
    "&InternetMaxBandwidthOut=5&Password=Passw0rd%21&SystemDisk.Category=cloud_essd&DataDisk.1.Size=100"
    "&DataDisk.1.Category=cloud_essd&DataDisk.1.DeleteWithInstance=true&DataDisk.2.Size=200"
    "&DataDisk.2.Category=cloud_auto&VSwitchId=vsw-test1&Format=XML&Version=2014-05-26&AccessKeyId=testAKID"
    "&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=4289331e-6a72-477a-b8d1-d9578906fd47"
    "&Timestamp=2026-11-26T05%3A10%3A59Z&Signature=ahHaLME48vO4999bM8d%2BGfvxgbo%3D"
)

POPCORE_FORM_BODY = (
    "AccessKeyId=testAKID&Action=RunInstances&DataDisk.1.Size=100&Format=JSON&RegionId=cn-hangzhou"
    "&SignatureMethod=HMAC-SHA1&SignatureNonce=c70c881b78c075a3a49c439114e392c7&SignatureVersion=1.0"
    "&Tag.1.Key=env&Tag.1.Value=a%20b%26c&Timestamp=2026-11-26T05%3A12%3A09Z&Version=2014-05-26"
    "&Signature=LGRt%2BHodtO4dFJibtjVsAHBIXdY%3D"
)

TEA_RUN_INSTANCES_QUERY = (
    "Amount=1&DataDisk.1.Category=cloud_essd&DataDisk.1.DeleteWithInstance=True&DataDisk.1.Size=100"
    "&DataDisk.2.Category=cloud_auto&DataDisk.2.Size=200&DryRun=False&HostNames.1=h1&HostNames.2=h2"
    "&ImageId=ubuntu_22_04_x64_20G_alibase_20240101.vhd&InstanceName=probe+vm%2A~%2F&InstanceType=ecs.g6.large"
    "&RegionId=cn-hangzhou&SecurityGroupId=sg-test1&Tag.1.Key=env&Tag.1.Value=probe&Tag.2.Key=team"
    "&Tag.2.Value=a+b%26c&VSwitchId=vsw-test1&SystemDisk.Category=cloud_essd&SystemDisk.Size=40"
)
TEA_HEADERS = {
    "accept": "application/json",
    "host": "127.0.0.1:18080",
    "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
    "x-acs-action": "RunInstances",
    "x-acs-content-sha256": signing.EMPTY_BODY_SHA256,
    "x-acs-credentials-provider": "static_ak",
    "x-acs-date": "2026-11-26T05:12:55Z",
    "x-acs-signature-nonce": "30f0efa56d59c1a064b9277daf37e88e",
    "x-acs-version": "2014-05-26",
}
TEA_AUTHORIZATION = (
    "ACS3-HMAC-SHA256 Credential=testAKID,SignedHeaders=accept;host;user-agent;x-acs-action;"
    "x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,"
    "Signature=ca5618e3ec333be2c64d09b527bb05ea334175a31857e360e89375a1bbb4e46b"
)


def _v1_ok(method: str, params: dict[str, str]) -> bool:
    expected = signing.v1_signature(SECRET, signing.v1_string_to_sign(method, params))
    return signing.signatures_equal(expected, params["Signature"])


def test_v1_libcloud_get_verifies() -> None:
    params = dict(parse_qsl(LIBCLOUD_GET_QUERY, keep_blank_values=True))
    assert _v1_ok("GET", params)
    assert not _v1_ok("POST", params)


def test_v1_popcore_form_body_verifies() -> None:
    params = dict(parse_qsl(POPCORE_FORM_BODY, keep_blank_values=True))
    assert _v1_ok("POST", params)
    params["RegionId"] = "cn-beijing"
    assert not _v1_ok("POST", params)


def test_v3_tea_run_instances_verifies() -> None:
    auth = signing.parse_v3_authorization(TEA_AUTHORIZATION)
    assert auth is not None and auth.access_key_id == "testAKID"
    pairs = parse_qsl(TEA_RUN_INSTANCES_QUERY, keep_blank_values=True)
    creq = signing.v3_canonical_request(
        "POST", "/", pairs, TEA_HEADERS, auth.signed_headers, TEA_HEADERS["x-acs-content-sha256"]
    )
    assert signing.v3_signature(SECRET, signing.v3_string_to_sign(creq)) == auth.signature
    tampered = {**TEA_HEADERS, "x-acs-action": "DeleteInstance"}
    creq2 = signing.v3_canonical_request(
        "POST", "/", pairs, tampered, auth.signed_headers, signing.EMPTY_BODY_SHA256
    )
    assert signing.v3_signature(SECRET, signing.v3_string_to_sign(creq2)) != auth.signature


def test_parse_v3_authorization_rejects_malformed() -> None:
    assert signing.parse_v3_authorization("ACS3-HMAC-SHA256 Credential=a") is None
    assert signing.parse_v3_authorization("Bearer x") is None
    assert signing.parse_v3_authorization("ACS3-HMAC-SHA256 Credential=,SignedHeaders=a,Signature=b") is None


def test_sign_v1_round_trip() -> None:
    signed = signing.sign_v1("GET", {"Action": "DescribeRegions", "Version": "2014-05-26"}, "ak", SECRET)
    assert _v1_ok("GET", signed)


def test_percent_encode_matches_clients() -> None:
    assert signing.percent_encode("a b*c~/") == "a%20b%2Ac~%2F"
