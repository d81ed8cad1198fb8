// The official Node.js Tea SDKs (@alicloud/ecs20140526, @alicloud/vpc20160428) driven through a
// day of ECS work against nubes, the way their users write it. tests/tools/test_node_sdk.py runs
// it and checks what it prints: one JSON document of what the SDKs returned.
//
// Environment: NUBES_ENDPOINT (host:port), NUBES_ACCESS_KEY_ID, NUBES_ACCESS_KEY_SECRET,
// NUBES_REGION, NUBES_CIDR (the VPC's /16), and NUBES_SIGNATURE_ALGORITHM: empty for the SDK's
// default (ACS3-HMAC-SHA256, the x-acs-* headers) or "v2" (the RPC path: HMAC-SHA1 in the query).

import ecs from '@alicloud/ecs20140526';
import vpc from '@alicloud/vpc20160428';
import { $OpenApiUtil } from '@alicloud/openapi-core';

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const region = env('NUBES_REGION');
const cidr = env('NUBES_CIDR');
const config = () => {
  const settings = {
    accessKeyId: env('NUBES_ACCESS_KEY_ID'),
    accessKeySecret: env('NUBES_ACCESS_KEY_SECRET'),
    regionId: region,
    endpoint: env('NUBES_ENDPOINT'),
    protocol: 'http',
  };
  const algorithm = env('NUBES_SIGNATURE_ALGORITHM');
  if (algorithm) settings.signatureAlgorithm = algorithm;
  return new $OpenApiUtil.Config(settings);
};
const client = new ecs.default(config());
const network = new vpc.default(config());

// Which of the SDK's request paths each call took: doRequest (ACS3-HMAC-SHA256, the default) or
// doRPCRequest (signatureAlgorithm "v2": HMAC-SHA1, signature version 1.0, in the query).
const paths = { doRequest: 0, doRPCRequest: 0 };
for (const sdk of [client, network]) {
  for (const name of Object.keys(paths)) {
    const original = sdk[name].bind(sdk);
    sdk[name] = (...args) => {
      paths[name] += 1;
      return original(...args);
    };
  }
}

// The SDK casts each answer onto its model leniently (a number may come as a digit string, a
// boolean as "true"); the typed SDKs of other languages (Go's, Java's) do not. So each raw answer
// is checked here strictly against the types the model declares; what differs is reported.
const typeProblems = [];
function checkType(value, type, path) {
  if (value === undefined || value === null) return;
  if (typeof type === 'string') {
    if (['string', 'number', 'boolean'].includes(type) && typeof value !== type) {
      typeProblems.push(`${path}: ${JSON.stringify(value)} is a ${typeof value}, the SDK declares ${type}`);
    }
  } else if (typeof type === 'function') {
    if (typeof value !== 'object' || Array.isArray(value)) {
      typeProblems.push(`${path}: ${JSON.stringify(value)} is not an object (${type.name})`);
      return;
    }
    const types = type.types();
    for (const [field, wire] of Object.entries(type.names())) checkType(value[wire], types[field], `${path}.${wire}`);
  } else if (type.type === 'array') {
    if (!Array.isArray(value)) {
      typeProblems.push(`${path}: ${JSON.stringify(value)} is not a list`);
      return;
    }
    value.forEach((item, i) => checkType(item, type.itemType, `${path}[${i}]`));
  }
}
for (const [sdk, models] of [[client, ecs], [network, vpc]]) {
  const callApi = sdk.callApi.bind(sdk);
  sdk.callApi = async (params, request, runtime) => {
    const answer = await callApi(params, request, runtime);
    const model = models[`${params.action}ResponseBody`];
    if (!model) throw new Error(`no model for ${params.action}`);
    checkType(answer.body, model, params.action);
    return answer;
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `read` until it returns `want`; returns the last value seen (the test asserts on it).
async function waitFor(read, want, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  let seen = await read();
  while (seen !== want && Date.now() < deadline) {
    await sleep(200);
    seen = await read();
  }
  return seen;
}

// What the SDK exposes of a failed call: its code, HTTP status and the body it parsed.
async function failure(call) {
  try {
    await call();
  } catch (err) {
    return { name: err.name, code: err.code, statusCode: err.statusCode ?? err.data?.statusCode,
             requestId: err.data?.RequestId ?? null, message: err.message };
  }
  return null;
}

async function describeInstances(ids) {
  const body = (await client.describeInstances(new ecs.DescribeInstancesRequest({
    regionId: region, instanceIds: JSON.stringify(ids), pageSize: 100,
  }))).body;
  return { totalCount: body.totalCount, instances: body.instances.instance };
}

async function statusOf(instanceId) {
  const { instances } = await describeInstances([instanceId]);
  return instances.length === 1 ? instances[0].status : `missing (${instances.length})`;
}

async function diskOf(diskId) {
  const body = (await client.describeDisks(new ecs.DescribeDisksRequest({
    regionId: region, diskIds: JSON.stringify([diskId]),
  }))).body;
  return body.disks.disk[0];
}

const out = {};

// Regions and zones.
const regions = (await client.describeRegions(new ecs.DescribeRegionsRequest({}))).body;
out.regions = {
  requestId: regions.requestId,
  ids: regions.regions.region.map((r) => r.regionId),
  endpoint: regions.regions.region.find((r) => r.regionId === region)?.regionEndpoint,
};
const zones = (await client.describeZones(new ecs.DescribeZonesRequest({ regionId: region }))).body;
const zoneId = zones.zones.zone[0].zoneId;
out.zoneId = zoneId;

// A VPC and a vSwitch (the VPC SDK), each waited on until Available.
const vpcId = (await network.createVpc(new vpc.CreateVpcRequest({
  regionId: region, cidrBlock: cidr, vpcName: 'node-vpc', description: 'the Node.js Tea SDK',
}))).body.vpcId;
const vpcStatus = await waitFor(async () => (await network.describeVpcs(new vpc.DescribeVpcsRequest({
  regionId: region, vpcId,
}))).body.vpcs.vpc[0].status, 'Available');
const [a, b] = cidr.split('.');
const vswitchCidr = `${a}.${b}.1.0/24`;
const vswitchId = (await network.createVSwitch(new vpc.CreateVSwitchRequest({
  regionId: region, vpcId, zoneId, cidrBlock: vswitchCidr, vSwitchName: 'node-vsw',
}))).body.vSwitchId;
const described = async () => (await network.describeVSwitches(new vpc.DescribeVSwitchesRequest({
  regionId: region, vSwitchId: vswitchId,
}))).body.vSwitches.vSwitch[0];
const vswitchStatus = await waitFor(async () => (await described()).status, 'Available');
const vswitch = await described();
out.vpc = { vpcId, status: vpcStatus };
out.vswitch = { vswitchId, status: vswitchStatus, vpcId: vswitch.vpcId, zoneId: vswitch.zoneId,
                cidrBlock: vswitch.cidrBlock };

// A security group with two rules: one in the top-level fields, one in Permissions.N.
const groupId = (await client.createSecurityGroup(new ecs.CreateSecurityGroupRequest({
  regionId: region, vpcId, securityGroupName: 'node-sg', description: 'ssh and web',
}))).body.securityGroupId;
await client.authorizeSecurityGroup(new ecs.AuthorizeSecurityGroupRequest({
  regionId: region, securityGroupId: groupId, ipProtocol: 'tcp', portRange: '22/22',
  sourceCidrIp: '0.0.0.0/0',
}));
await client.authorizeSecurityGroup(new ecs.AuthorizeSecurityGroupRequest({
  regionId: region, securityGroupId: groupId,
  permissions: [new ecs.AuthorizeSecurityGroupRequestPermissions({
    ipProtocol: 'tcp', portRange: '443/443', sourceCidrIp: '10.0.0.0/8', priority: '2',
  })],
}));
const group = (await client.describeSecurityGroupAttribute(new ecs.DescribeSecurityGroupAttributeRequest({
  regionId: region, securityGroupId: groupId,
}))).body;
out.securityGroup = {
  groupId, vpcId: group.vpcId, name: group.securityGroupName,
  rules: group.permissions.permission.map((p) => ({
    ipProtocol: p.ipProtocol, portRange: p.portRange, sourceCidrIp: p.sourceCidrIp,
    priority: p.priority, direction: p.direction, policy: p.policy,
  })),
};

// The system image to launch from.
const images = (await client.describeImages(new ecs.DescribeImagesRequest({
  regionId: region, imageOwnerAlias: 'system', pageSize: 100,
}))).body.images.image;
const imageId = images.find((i) => i.imageId.includes('tiny')).imageId;
out.imageId = imageId;

const runRequest = (fields) => new ecs.RunInstancesRequest({
  regionId: region, imageId, instanceType: 'ecs.g7.large', securityGroupId: groupId,
  vSwitchId: vswitchId, instanceName: 'node-vm', internetMaxBandwidthOut: 0,
  systemDisk: new ecs.RunInstancesRequestSystemDisk({ category: 'cloud_essd', size: '20' }),
  tag: [new ecs.RunInstancesRequestTag({ key: 'sdk', value: 'node' })],
  ...fields,
});

// DryRun: the check alone, refused with DryRunOperation, nothing created.
out.dryRun = await failure(() => client.runInstances(runRequest({ amount: 1, dryRun: true })));

// Two instances, waited on until Running.
const run = (await client.runInstances(runRequest({ amount: 2, clientToken: `node-${Date.now()}` }))).body;
const instanceIds = run.instanceIdSets.instanceIdSet;
const running = {};
for (const id of instanceIds) running[id] = await waitFor(() => statusOf(id), 'Running');
const listed = await describeInstances(instanceIds);
out.run = {
  requestId: run.requestId, orderId: run.orderId, instanceIds, statuses: running,
  totalCount: listed.totalCount,
  instances: listed.instances.map((i) => ({
    instanceId: i.instanceId, status: i.status, instanceType: i.instanceType, imageId: i.imageId,
    zoneId: i.zoneId, cpu: i.cpu, memory: i.memory, instanceName: i.instanceName,
    vpcId: i.vpcAttributes.vpcId, vSwitchId: i.vpcAttributes.vSwitchId,
    privateIps: i.vpcAttributes.privateIpAddress.ipAddress,
    securityGroupIds: i.securityGroupIds.securityGroupId,
    tags: (i.tags?.tag ?? []).map((t) => [t.tagKey, t.tagValue]),
  })),
};

// The calls a script makes about one instance, and about all of them.
const [first, second] = instanceIds;
const attribute = (await client.describeInstanceAttribute(new ecs.DescribeInstanceAttributeRequest({
  instanceId: first,
}))).body;
const statuses = (await client.describeInstanceStatus(new ecs.DescribeInstanceStatusRequest({
  regionId: region, instanceId: instanceIds, pageSize: 50,
}))).body;
out.attribute = {
  instanceId: attribute.instanceId, status: attribute.status, instanceType: attribute.instanceType,
  vpcId: attribute.vpcAttributes.vpcId, privateIps: attribute.vpcAttributes.privateIpAddress.ipAddress,
  securityGroupIds: attribute.securityGroupIds.securityGroupId,
};
out.instanceStatus = {
  totalCount: statuses.totalCount,
  statuses: Object.fromEntries(statuses.instanceStatuses.instanceStatus.map((i) => [i.instanceId, i.status])),
};

// Reboot the second; stop the first, then start it again.
await client.rebootInstance(new ecs.RebootInstanceRequest({ instanceId: second }));
const rebooted = await waitFor(() => statusOf(second), 'Running');
await client.stopInstance(new ecs.StopInstanceRequest({ instanceId: first }));
const stopped = await waitFor(() => statusOf(first), 'Stopped');
// A running-only action on a stopped instance is refused with the instance's status in the code.
const stoppedAgain = await failure(() => client.stopInstance(new ecs.StopInstanceRequest({
  instanceId: first,
})));
await client.startInstance(new ecs.StartInstanceRequest({ instanceId: first }));
const restarted = await waitFor(() => statusOf(first), 'Running');
out.power = { stopped, stoppedAgain, restarted, rebooted, otherStatus: await statusOf(second) };

// A data disk, attached to the first instance, and a snapshot of it.
const diskId = (await client.createDisk(new ecs.CreateDiskRequest({
  regionId: region, zoneId, diskName: 'node-data', diskCategory: 'cloud_essd', size: 30,
}))).body.diskId;
const diskAvailable = await waitFor(async () => (await diskOf(diskId)).status, 'Available');
await client.attachDisk(new ecs.AttachDiskRequest({ instanceId: first, diskId }));
const diskInUse = await waitFor(async () => (await diskOf(diskId)).status, 'In_use');
const instanceDisks = (await client.describeDisks(new ecs.DescribeDisksRequest({
  regionId: region, instanceId: first,
}))).body;
out.disks = {
  diskId, available: diskAvailable, inUse: diskInUse,
  totalCount: instanceDisks.totalCount,
  ofInstance: instanceDisks.disks.disk.map((d) => ({
    diskId: d.diskId, type: d.type, category: d.category, size: d.size, status: d.status,
    instanceId: d.instanceId, device: d.device,
  })),
};
const snapshotId = (await client.createSnapshot(new ecs.CreateSnapshotRequest({
  diskId, snapshotName: 'node-snap',
}))).body.snapshotId;
const snapshotOf = async () => (await client.describeSnapshots(new ecs.DescribeSnapshotsRequest({
  regionId: region, snapshotIds: JSON.stringify([snapshotId]),
}))).body.snapshots.snapshot[0];
const snapshotStatus = await waitFor(async () => (await snapshotOf()).status, 'accomplished');
const snapshot = await snapshotOf();
out.snapshot = { snapshotId, status: snapshotStatus, sourceDiskId: snapshot.sourceDiskId,
                 sourceDiskSize: snapshot.sourceDiskSize, name: snapshot.snapshotName };

// Errors the SDK raises from nubes' answers.
out.errors = {
  badInstanceId: await failure(() => client.describeInstanceAttribute(
    new ecs.DescribeInstanceAttributeRequest({ instanceId: 'i-doesnotexist000000' }))),
  badImage: await failure(() => client.runInstances(runRequest({ amount: 1, imageId: 'm-nosuchimage' }))),
  badVpc: await failure(() => network.describeVpcAttribute(new vpc.DescribeVpcAttributeRequest({
    regionId: region, vpcId: 'vpc-doesnotexist000000',
  }))),
};

// Release both instances at once, running as they are (Force), and see them gone.
const deleted = (await client.deleteInstances(new ecs.DeleteInstancesRequest({
  regionId: region, instanceId: instanceIds, force: true,
}))).body;
const gone = await waitFor(async () => (await describeInstances(instanceIds)).totalCount, 0);
// The data disk (not DeleteWithInstance) outlives the instance, detached.
const diskLeft = await waitFor(async () => (await diskOf(diskId)).status, 'Available');
out.deleted = { requestId: deleted.requestId, remaining: gone, disk: diskLeft,
                diskInstanceId: (await diskOf(diskId)).instanceId };

// Tear-down, leaves first: the snapshot, the disk, the group, the vSwitch, the VPC.
await client.deleteSnapshot(new ecs.DeleteSnapshotRequest({ snapshotId }));
await client.deleteDisk(new ecs.DeleteDiskRequest({ diskId }));
const disksLeft = (await client.describeDisks(new ecs.DescribeDisksRequest({
  regionId: region, diskIds: JSON.stringify([diskId]),
}))).body.totalCount;
await client.deleteSecurityGroup(new ecs.DeleteSecurityGroupRequest({ regionId: region, securityGroupId: groupId }));
// A VPC with a vSwitch in it is not deleted.
const vpcInUse = await failure(() => network.deleteVpc(new vpc.DeleteVpcRequest({ regionId: region, vpcId })));
await network.deleteVSwitch(new vpc.DeleteVSwitchRequest({ regionId: region, vSwitchId: vswitchId }));
const vswitchesLeft = await waitFor(async () => (await network.describeVSwitches(
  new vpc.DescribeVSwitchesRequest({ regionId: region, vpcId }))).body.totalCount, 0);
await network.deleteVpc(new vpc.DeleteVpcRequest({ regionId: region, vpcId }));
const vpcsLeft = await waitFor(async () => (await network.describeVpcs(new vpc.DescribeVpcsRequest({
  regionId: region, vpcId,
}))).body.totalCount, 0);
out.teardown = { disksLeft, vpcInUse, vswitchesLeft, vpcsLeft };

// A wrong secret is refused by the signature check of the path in use.
const forged = new ecs.default(Object.assign(config(), { accessKeySecret: 'not-the-secret' }));
out.wrongSecret = await failure(() => forged.describeRegions(new ecs.DescribeRegionsRequest({})));
out.paths = paths;
out.typeProblems = [...new Set(typeProblems)];

process.stdout.write(`${JSON.stringify(out)}\n`);
