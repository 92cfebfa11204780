/**
 * grpc-js service definitions derived from the generated `@bufbuild/protobuf`
 * service descriptors, so the wire paths and codecs come from the .proto files
 * and nothing is written twice.
 */
import { create, fromBinary, ScalarType, toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/**
 * What `requestDeserialize` returns for bytes that are not a valid message.
 * grpc-js answers a *throwing* deserializer with INTERNAL; returning this
 * marker instead lets the call handler answer INVALID_ARGUMENT.
 */
export class DecodeFailure {
  constructor(readonly message: string) {}
}

/** A request as handed to a grpc-js handler: the decoded message, or why it did not decode. */
export type Decoded<Desc extends DescMessage> = MessageShape<Desc> | DecodeFailure;

/**
 * The request decoder of `input`. Most requests are one id (`{ string
 * task_id = 1; }`); for a message of exactly one string field 1 outside any
 * oneof, bytes holding just that field with ASCII text (< 128 bytes) are read
 * directly — the same message `fromBinary` builds, for a fraction of its
 * per-call cost. Everything else goes through `fromBinary`.
 */
export function requestDecoder<I extends DescMessage>(input: I): (bytes: Buffer) => MessageShape<I> {
  const decode = (bytes: Buffer) => fromBinary(input, bytes);
  const [field, ...others] = input.fields;
  if (field === undefined || others.length > 0 || field.number !== 1 || field.fieldKind !== "scalar" || field.scalar !== ScalarType.STRING || field.oneof !== undefined) {
    return decode;
  }
  const name = field.localName;
  return (bytes) => {
    // Tag 0x0a (field 1, length-delimited), a one-byte length, then exactly that many ASCII bytes.
    const len = bytes[1] ?? 0x80;
    if (bytes[0] !== 0x0a || len >= 0x80 || bytes.length !== 2 + len) return decode(bytes);
    for (let i = 2; i < bytes.length; i++) {
      if ((bytes[i] as number) >= 0x80) return decode(bytes);
    }
    const message = create(input);
    (message as Record<string, unknown>)[name] = bytes.toString("latin1", 2);
    return message;
  };
}

function methodDefinition<I extends DescMessage, O extends DescMessage>(
  path: string,
  localName: string,
  input: I,
  output: O,
  requestStream: boolean,
  responseStream: boolean,
): MethodDefinition<Decoded<I>, MessageShape<O>> {
  const decodeRequest = requestDecoder(input);
  return {
    path,
    originalName: localName,
    requestStream,
    responseStream,
    requestSerialize: (req) => {
      if (req instanceof DecodeFailure) throw new Error(req.message);
      return Buffer.from(toBinary(input, req));
    },
    requestDeserialize: (bytes) => {
      try {
        return decodeRequest(bytes);
      } catch (err) {
        return new DecodeFailure(err instanceof Error ? err.message : String(err));
      }
    },
    // Bytes are a message its handler already encoded (see bind-service's stream items).
    // A Buffer passes as it is: `.buffer` of a fresh Buffer makes JavaScriptCore materialize its
    // ArrayBuffer (≈ 0.3 µs per streamed log line; bench/README.md, benchmark 3).
    responseSerialize: (res) =>
      Buffer.isBuffer(res)
        ? res
        : res instanceof Uint8Array
          ? Buffer.from(res.buffer, res.byteOffset, res.byteLength)
          : Buffer.from(toBinary(output, res)),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
  };
}

/**
 * Derive the grpc-js `ServiceDefinition` of `service`: path
 * `/<package>.<Service>/<Method>`, binary codecs from the message schemas.
 * Keyed by the proto method name (`SubmitTask`); `originalName` is the
 * generated local name (`submitTask`). Call once per service at start-up.
 */
export function createServiceDefinition(service: DescService, typeName = service.typeName): ServiceDefinition {
  return Object.fromEntries(
    service.methods.map((m) => {
      const streamsIn = m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming";
      const streamsOut = m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming";
      return [m.name, methodDefinition(`/${typeName}/${m.name}`, m.localName, m.input, m.output, streamsIn, streamsOut)];
    }),
  );
}
