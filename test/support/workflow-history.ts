/**
 * Workflow histories to and from the proto JSON format that Temporal's tools use (`temporal workflow
 * show --output json`, the Web UI's download) and that `Worker.runReplayHistories` documents.
 *
 * The SDK's own `historyToJSON`/`historyFromJSON` (@temporalio/common/lib/proto-utils) are used when
 * they work. In this install they throw "type must be a Type": @temporalio/common and @temporalio/proto
 * each got a nested copy of protobufjs 8 (the hoisted one is grpc's 7.x), so common's protojson
 * rejects proto's reflected types. The fallback runs the protojson of the protobufjs copy that
 * @temporalio/proto itself resolves, which produces the same format.
 */
import path from 'node:path';
import { historyFromJSON, historyToJSON, type History } from '@temporalio/common/lib/proto-utils';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

interface ProtoJson {
  toJson(type: unknown, message: unknown, options?: object): unknown;
  fromJson(type: unknown, json: unknown, options?: object): History;
}

let fallback: { protojson: ProtoJson; historyType: unknown } | undefined;
function sameCopyProtojson() {
  if (!fallback) {
    const protoDir = path.dirname(require.resolve('@temporalio/proto/package.json'));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const protojson = require(
      require.resolve('protobufjs/ext/protojson', { paths: [protoDir] }),
    ) as ProtoJson;
    const root = patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown };
    fallback = { protojson, historyType: root.lookupType('temporal.api.history.v1.History') };
  }
  return fallback;
}

const isDuplicateProtobuf = (err: unknown) =>
  err instanceof TypeError && err.message === 'type must be a Type';

/** A fetched history as proto JSON text (two-space indented, newline-terminated). */
export function historyToJsonText(history: History): string {
  try {
    return historyToJSON(history) + '\n';
  } catch (err) {
    if (!isDuplicateProtobuf(err)) throw err;
    const { protojson, historyType } = sameCopyProtojson();
    const message = proto.temporal.api.history.v1.History.fromObject(history);
    return JSON.stringify(protojson.toJson(historyType, message), null, 2) + '\n';
  }
}

/** A History from its proto JSON (as parsed from a file). */
export function historyFromJsonValue(json: unknown): History {
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!isDuplicateProtobuf(err)) throw err;
    const { protojson, historyType } = sameCopyProtojson();
    return protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
  }
}
