/**
 * grpc-js service definitions derived from the generated `@bufbuild/protobuf`
 * service descriptors, so the wire paths and codecs come from the .proto files
 * and nothing is written twice.
 */
import { fromBinary, toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
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

function methodDefinition<I extends DescMessage, O extends DescMessage>(
  path: string,
  localName: string,
  input: I,
  output: O,
  requestStream: boolean,
  responseStream: boolean,
): MethodDefinition<Decoded<I>, MessageShape<O>> {
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
        return fromBinary(input, bytes);
      } catch (err) {
        return new DecodeFailure(err instanceof Error ? err.message : String(err));
      }
    },
    // Bytes are a message its handler already encoded (see bind-service's stream items).
    responseSerialize: (res) =>
      res instanceof Uint8Array ? Buffer.from(res.buffer, res.byteOffset, res.byteLength) : Buffer.from(toBinary(output, res)),
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
